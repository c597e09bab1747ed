"""One MySQL restore in a process of its own, for tests that kill it at a chosen moment.

Not a test module. The test passes what to do in the `BW_CHILD_SPEC` environment variable (JSON:
target URL, backup folder and name, client tools, and `pause_at`/`nth`, the progress step at
which to stop); the child prints `PAUSED <step>` there and sleeps, so the test can kill -9 its
whole process group (the `mariadb` client it runs included) at exactly that moment. With
`sabotage` it instead creates, from a second session, a trigger named like the restore's last
one just before the restore creates it, so the restore fails at its very last statement.
Outcomes are printed as `DONE <json>` or `FAILED <message>`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pymysql

from backup_engine.dumpinfo import ClientTools
from backup_engine.targets import Target
from tests.engine_api import BackupStore, restore_backup


def main() -> None:
    spec = json.loads(os.environ["BW_CHILD_SPEC"])
    target = Target.from_url("dst", spec["url"])
    store = BackupStore(Path(spec["store"]))
    seen: dict[str, int] = {}

    def progress(**info: Any) -> None:
        step = info.get("step")
        if step is None:
            return
        seen[step] = seen.get(step, 0) + 1
        sabotage = spec.get("sabotage")
        if sabotage and step == "object" and info.get("name") == sabotage["after"]:
            url = target.url
            conn = pymysql.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                                   database=url.database, autocommit=True)
            with conn.cursor() as cur:
                cur.execute(sabotage["statement"])
            conn.close()
        if step == spec.get("pause_at") and seen[step] == spec.get("nth", 1):
            print(f"PAUSED {step}", flush=True)
            time.sleep(3600)

    try:
        result = restore_backup(target, store, spec["backup"], tools=ClientTools(**spec["tools"]),
                                safety_backup=False, progress=progress)
    except Exception as exc:  # noqa: BLE001 - the test reads the message
        print(f"FAILED {type(exc).__name__}: {exc}", flush=True)
        sys.exit(1)
    print("DONE " + json.dumps({key: result[key] for key in ("tables", "rows")}), flush=True)


if __name__ == "__main__":
    main()
