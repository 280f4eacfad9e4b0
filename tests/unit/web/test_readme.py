"""appliance/web/README.md shows the permission table of appliance/accounts/roles.py as it is."""

from __future__ import annotations

import re
from pathlib import Path

from appliance.accounts.roles import PERMISSIONS, Permission, Role

README = Path(__file__).parents[3] / "appliance" / "web" / "README.md"


def documented() -> dict[str, set[str]]:
    """{permission: roles ticked} read from the README's table."""
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- permissions: begin -->")[1].split("<!-- permissions: end -->")[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table.strip().splitlines()]
    header, body = rows[0], rows[2:]
    roles = header[2:]
    return {
        re.sub(r"`", "", row[0]): {role for role, cell in zip(roles, row[2:], strict=True) if cell == "✓"}
        for row in body
    } | {"(roles)": set(roles)}


def test_the_readme_table_is_the_permission_table() -> None:
    expected = {permission.value: {role.value for role in PERMISSIONS[permission]} for permission in Permission}
    expected["(roles)"] = {role.value for role in Role}
    assert documented() == expected
