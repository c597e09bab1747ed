"""One measured path of ours, run in its own process: `python -m bench.child MODE ARGS`.

Modes call the same functions the tasks and `--local` call (tasks.operations), with settings
read from the environment the parent sets: BACKUP_TARGETS (`bench` and `into`), BACKUP_DIR,
BACKUP_COMPRESSION. So a row costs what a task costs: hashing, compression, the manifest and
its signature, the checksum check and safety backup of a restore, the build beside and swap.
"""

from __future__ import annotations

import sys
from pathlib import Path

from config.settings import load_settings
from tasks import operations


def main(argv: list[str]) -> None:
    mode, *rest = argv
    settings = load_settings(dotenv_path=None)
    if mode == "backup":  # backup FORMAT METHOD NAME_FILE
        backup_format, method, name_file = rest
        manifest = operations.create(settings, target="bench", format=backup_format, method=method,
                                     with_twin=False)
        Path(name_file).write_text(manifest["backup_filename"])
    elif mode == "convert":  # convert JSON_NAME NAME_FILE
        json_name, name_file = rest
        Path(name_file).write_text(operations.convert(settings, backup_filename=json_name)["backup_filename"])
    elif mode == "restore":  # restore NAME  (into target `into`, as `backups.restore` does it)
        operations.restore(settings, backup_filename=rest[0], target="into", source_target="bench")
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
