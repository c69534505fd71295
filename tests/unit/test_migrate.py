from pathlib import Path

import pytest

from libs.common.migrate import Migration, MigrationError, load_migrations, migrate


class RecordingTarget:
    def __init__(self, applied: dict[int, str] | None = None) -> None:
        self.recorded = dict(applied or {})
        self.ran: list[int] = []

    async def applied(self) -> dict[int, str]:
        return dict(self.recorded)

    async def apply(self, migration: Migration) -> None:
        self.ran.append(migration.version)
        self.recorded[migration.version] = migration.checksum


def write(folder: Path, files: dict[str, str]) -> None:
    for name, sql in files.items():
        (folder / name).write_text(sql)


def test_files_load_in_version_order(tmp_path: Path) -> None:
    write(tmp_path, {"0002_b.sql": "SELECT 2;", "0001_a.sql": "SELECT 1;"})
    assert [m.version for m in load_migrations(tmp_path)] == [1, 2]


def test_badly_named_files_are_rejected(tmp_path: Path) -> None:
    write(tmp_path, {"1_a.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match="bad migration file name"):
        load_migrations(tmp_path)


def test_statements_split_at_semicolons_ending_a_line() -> None:
    sql = "-- a comment\nCREATE TABLE a (x String DEFAULT ';');\n\nCREATE TABLE b (y UInt8);\n"
    assert Migration(1, "a", sql).statements() == [
        "-- a comment\nCREATE TABLE a (x String DEFAULT ';')",
        "CREATE TABLE b (y UInt8)",
    ]


async def test_only_pending_migrations_run(tmp_path: Path) -> None:
    write(tmp_path, {"0001_a.sql": "SELECT 1;", "0002_b.sql": "SELECT 2;"})
    migrations = load_migrations(tmp_path)
    target = RecordingTarget({1: migrations[0].checksum})
    applied = await migrate(target, migrations)
    assert [m.version for m in applied] == [2] and target.ran == [2]
    assert await migrate(target, migrations) == []


async def test_an_applied_file_that_changed_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, {"0001_a.sql": "SELECT 1;"})
    target = RecordingTarget({1: "checksum-of-another-text"})
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(target, load_migrations(tmp_path))
