"""The maintenance tunnel (H4): a reverse SSH connection from the box to the contractor's bastion,
off by default, opened from the console for a few hours, closed at its end or at once. See README.md
in this folder for who does what and for the bastion's side."""
