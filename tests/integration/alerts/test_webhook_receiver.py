"""The local webhook receiver answers as programmed on a real socket (used by every alerts test)."""

from __future__ import annotations

import httpx
import pytest

from healthscore.webhook_receiver import Close, Hang, Respond, WebhookReceiver

pytestmark = pytest.mark.integration


async def test_programmed_answers_then_default() -> None:
    async with WebhookReceiver() as receiver, httpx.AsyncClient(timeout=5) as client:
        receiver.program(
            "/slack",
            Respond(500),
            Respond.rate_limited(2),
            Respond.slack_error(410, "channel_is_archived"),
            then=Respond(200, "ok"),
        )
        answers = []
        for _ in range(5):
            response = await client.post(receiver.url("/slack"), json={"text": "hi"})
            answers.append((response.status_code, response.text))
        assert answers == [
            (500, "ok"),
            (429, "rate_limited"),
            (410, "channel_is_archived"),
            (200, "ok"),
            (200, "ok"),
        ]
        assert [r.answer for r in receiver.requests("/slack")] == [
            "500",
            "429",
            "410",
            "200",
            "200",
        ]
        assert receiver.requests("/slack")[0].json() == {"text": "hi"}
        limited = await client.post(receiver.url("/other"))
        assert limited.status_code == 200


async def test_retry_after_header_and_close_and_hang() -> None:
    async with WebhookReceiver() as receiver, httpx.AsyncClient(timeout=0.3) as client:
        receiver.program("/x", Respond.rate_limited(1.5), Close(), Hang(60))
        first = await client.post(receiver.url("/x"), content=b"{}")
        assert first.headers["retry-after"] == "1.5"
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(receiver.url("/x"), content=b"{}")
        with pytest.raises(httpx.ReadTimeout):
            await client.post(receiver.url("/x"), content=b"{}")
        assert [r.answer for r in receiver.requests("/x")] == ["429", "close", "hang"]


async def test_control_endpoints_program_and_list() -> None:
    async with WebhookReceiver() as receiver, httpx.AsyncClient(timeout=5) as client:
        programmed = await client.post(
            receiver.url("/_receiver/program"),
            json={"path": "/crm", "behaviours": [{"status": 404, "body": "no_service"}]},
        )
        assert programmed.status_code == 204
        gone = await client.post(
            receiver.url("/crm"), content=b'{"a": 1}', headers={"webhook-id": "m1"}
        )
        assert (gone.status_code, gone.text) == (404, "no_service")
        listed = (
            await client.get(receiver.url("/_receiver/requests"), params={"path": "/crm"})
        ).json()
        assert [(r["answer"], r["headers"]["webhook-id"], r["body"]) for r in listed] == [
            ("404", "m1", '{"a": 1}')
        ]
        waited = await receiver.wait_for(lambda reqs: len(reqs) == 1, path="/crm", within=1)
        assert waited[0].webhook_id == "m1"
        bad = await client.post(receiver.url("/_receiver/program"), json={"behaviours": []})
        assert bad.status_code == 400
