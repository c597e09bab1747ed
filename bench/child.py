"""One measured path of ours, run in its own process: `python -m bench.child MODE ARGS` (URL on stdin).

Modes call the same engine functions the tasks call (create_backup, convert_backup,
restore_backup), with the backup folder given as an argument.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from backup_engine.dumpinfo import ClientTools
from backup_engine.targets import Target
from tests.engine_api import BackupStore, convert_backup, create_backup, restore_backup

TOOLS = ClientTools(pg_dump=shutil.which("pg_dump"), psql=shutil.which("psql"))


def main(argv: list[str]) -> None:
    mode, folder, *rest = argv
    store = BackupStore(Path(folder))
    target = Target.from_url("bench", sys.stdin.readline().strip())
    if mode == "backup":  # backup FOLDER FORMAT METHOD NAME_FILE
        backup_format, method, name_file = rest
        manifest = create_backup(target, store, format=backup_format, method=method, tools=TOOLS)
        Path(name_file).write_text(manifest["backup_filename"])
    elif mode == "convert":  # convert FOLDER JSON_NAME NAME_FILE
        json_name, name_file = rest
        Path(name_file).write_text(convert_backup(store, json_name)["backup_filename"])
    elif mode == "restore":  # restore FOLDER NAME
        restore_backup(target, store, rest[0], tools=TOOLS)  # as in use: checksum and safety backup included
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
