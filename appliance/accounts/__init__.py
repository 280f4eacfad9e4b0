"""The console's accounts: roles and permissions (`roles`), people, passwords and lockout (`users`)."""
