#!/usr/bin/env python3
"""Signed TaskRouter event posts whose acknowledgements are recorded, for bench/crash-trials.sh.

  acked_posts.py post  --url URL --token TOKEN --prefix HEX4 --acked FILE [--threads 6]
      Posts signed `task.created` callbacks, each with its own event Sid and task Sid, until
      killed; appends the Sid of every request answered 2xx to FILE (one per line, flushed
      before the next request), so FILE lists exactly what the server acknowledged.
  acked_posts.py check --database DB FILE...
      Prints how many Sids the files list, how many are in the log as a fact exactly once, and
      the first few missing; exits 1 when any is missing.

Standard library only.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import itertools
import sqlite3
import sys
import threading
import time
import urllib.parse

ACCOUNT = "AC00000000000000000000000000c4a511"
WORKSPACE = "WS00000000000000000000000000c4a511"
WORKFLOW = "WW00000000000000000000000000c4a511"
QUEUE = "WQ00000000000000000000000000c4a511"


def signature(token, url, params):
    """X-Twilio-Signature: HMAC-SHA1 over the URL and the sorted parameters."""
    data = url + "".join(name + value for name, value in sorted(set(params)))
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def task_created(event_sid, task_sid, now_ms):
    seconds = str(now_ms // 1000)
    return [
        ("EventType", "task.created"),
        ("EventDescription", "Task " + task_sid + " created"),
        ("Sid", event_sid),
        ("AccountSid", ACCOUNT),
        ("WorkspaceSid", WORKSPACE),
        ("WorkspaceName", "crash-trials"),
        ("WorkflowSid", WORKFLOW),
        ("WorkflowName", "Support"),
        ("TaskQueueSid", QUEUE),
        ("TaskQueueName", "support"),
        ("TaskSid", task_sid),
        ("ResourceSid", task_sid),
        ("ResourceType", "task"),
        ("TaskAssignmentStatus", "pending"),
        ("TaskAttributes", '{"selected_product":"support","direction":"inbound","caller":"+15550000102"}'),
        ("TaskPriority", "1"),
        ("TaskAge", "0"),
        ("TaskVersion", "0"),
        ("TaskChannelUniqueName", "voice"),
        ("TaskDateCreated", seconds),
        ("Timestamp", seconds),
        ("TimestampMs", str(now_ms)),
    ]


def post(args):
    parsed = urllib.parse.urlsplit(args.url)
    counter = itertools.count()
    lock = threading.Lock()
    acked = open(args.acked, "a", encoding="ascii")

    def worker(thread):
        connection = None
        while True:
            n = next(counter)
            suffix = "%04x%04x%024x" % (int(args.prefix, 16), thread, n)
            event_sid, task_sid = "EV" + suffix, "WT" + suffix
            params = task_created(event_sid, task_sid, int(time.time() * 1000))
            body = urllib.parse.urlencode(params)
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature(args.token, args.url, params),
            }
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
                connection.request("POST", parsed.path, body, headers)
                response = connection.getresponse()
                response.read()
                if 200 <= response.status < 300:
                    with lock:
                        acked.write(event_sid + "\n")
                        acked.flush()
            except (OSError, http.client.HTTPException):
                # Refused, reset or cut by the kill: not acknowledged, so not listed.
                if connection is not None:
                    connection.close()
                connection = None
                time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def check(args):
    sids = []
    for name in args.files:
        with open(name, encoding="ascii") as lines:
            sids.extend(line.strip() for line in lines if line.strip())
    connection = sqlite3.connect("file:%s?mode=ro" % args.database, uri=True, timeout=30)
    # One pass over the log (event_sid has no index of its own).
    facts = dict(
        connection.execute(
            "SELECT event_sid, COUNT(*) FROM events WHERE is_fact = 1 AND event_sid IS NOT NULL GROUP BY event_sid"
        )
    )
    missing = ["%s (%d facts)" % (sid, facts.get(sid, 0)) for sid in sids if facts.get(sid, 0) != 1]
    print(len(sids), len(sids) - len(missing), " ".join(missing[:5]))
    return 1 if missing else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("post")
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--prefix", required=True, help="4 hex digits making this run's Sids unique")
    p.add_argument("--acked", required=True)
    p.add_argument("--threads", type=int, default=6)
    c = commands.add_parser("check")
    c.add_argument("--database", required=True)
    c.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.command == "post":
        post(args)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
