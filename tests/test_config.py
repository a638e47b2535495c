"""The workspace settings file: written whole, private when it may hold a password."""

from __future__ import annotations

from rulelife.config import Workspace


def test_a_settings_file_holding_a_url_is_readable_by_its_owner_only(tmp_path):
    plain = Workspace.create(tmp_path / "plain")
    private = Workspace.create(tmp_path / "private", db_url=f"sqlite:///{tmp_path / 'private' / 'r.db'}")
    assert plain.config_file.stat().st_mode & 0o777 == 0o644
    assert private.config_file.stat().st_mode & 0o777 == 0o600
    assert private.settings.db_url.endswith("r.db")
    assert sorted(p.name for p in plain.root.iterdir() if p.name.startswith(".")) == []
