# SPDX-License-Identifier: Apache-2.0
"""Dispatches a run and follows its events to the end:

    CORDON_URL=http://127.0.0.1:8470 CORDON_API_KEY=cdn_live_… python3 follow_run.py AGENT '{"url": "https://example.com"}'
"""
import json
import sys

import cordon


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: follow_run.py AGENT [INPUT-JSON]", file=sys.stderr)
        return 2
    client = cordon.Client()
    try:
        run = client.runs.create(sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}"))
        for event in client.runs.events(run["id"], follow=True):
            detail = json.dumps(event["step"]) if event["type"] == "step" else ""
            print(f"{event['seq']}\t{event['type']}\t{detail}")
        final = client.runs.wait(run["id"])
    except cordon.CordonError as e:
        print(f"cordon: {e}", file=sys.stderr)
        return 1
    print(f"{run['id']}: {final['status']}", json.dumps((final["result"] or {}).get("output")))
    return 0 if final["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
