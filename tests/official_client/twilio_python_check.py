"""Drives the simulator's REST API with Twilio's official Python helper library, unchanged but
for its base URL, and prints one JSON line of what it saw. Run by tests/api/official_client.rs.

Usage: twilio_python_check.py BASE_URL ACCOUNT_SID AUTH_TOKEN WORKSPACE_SID WORKFLOW_SID
"""
import json
import sys

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

base_url, account_sid, auth_token, workspace_sid, workflow_sid = sys.argv[1:6]
client = Client(account_sid, auth_token)
client.taskrouter.base_url = base_url  # the only change from code written for Twilio
workspace = client.taskrouter.v1.workspaces(workspace_sid)
seen = {}

seen["workspaces"] = [w.sid for w in client.taskrouter.v1.workspaces.list()]
seen["workspace_name"] = workspace.fetch().friendly_name
seen["activities"] = sorted(a.friendly_name for a in workspace.activities.list())
seen["workflow_timeout"] = workspace.workflows(workflow_sid).fetch().task_reservation_timeout

task = workspace.tasks.create(
    workflow_sid=workflow_sid,
    attributes=json.dumps({"selected_language": "es", "type": "support"}),
    priority=2,
)
seen["created_status"] = task.assignment_status
reservations = workspace.tasks(task.sid).reservations.list(reservation_status="pending")
seen["pending_reservations"] = len(reservations)
if reservations:
    accepted = workspace.tasks(task.sid).reservations(reservations[0].sid).update(reservation_status="accepted")
    seen["accepted_status"] = accepted.reservation_status
    try:
        workspace.tasks(task.sid).reservations(reservations[0].sid).update(reservation_status="accepted")
        seen["second_accept"] = "allowed"
    except TwilioRestException as error:
        seen["second_accept"] = {"status": error.status, "code": error.code}
seen["task_status"] = workspace.tasks(task.sid).fetch().assignment_status
seen["event_types"] = sorted({e.event_type for e in workspace.events.list(task_sid=task.sid)})
seen["paged_tasks"] = len(list(workspace.tasks.stream(page_size=1)))

try:
    workspace.tasks("WT00000000000000000000000000000000").fetch()
    seen["unknown_task"] = "found"
except TwilioRestException as error:
    seen["unknown_task"] = {"status": error.status, "code": error.code}

wrong = Client(account_sid, "wrong-token")
wrong.taskrouter.base_url = base_url
try:
    wrong.taskrouter.v1.workspaces(workspace_sid).fetch()
    seen["bad_token"] = "accepted"
except TwilioRestException as error:
    seen["bad_token"] = {"status": error.status, "code": error.code}
print(json.dumps(seen))
