"""Publishing the repository's health models through the api, as an admin would on day one.

The demo publishes every shipped model (not only the default): from the first publish on, the
models in force are the published ones, so publishing one alone would retire the others.
"""

from __future__ import annotations

from importlib import resources

import httpx

from healthscore.engine.selection import DEFAULT_MODELS_DIR


class PublishFailedError(RuntimeError):
    """The api refused or failed a publish; the message names the model and the api's answer."""


def shipped_documents() -> dict[str, str]:
    """The YAML text of each shipped model, by file stem."""
    folder = resources.files("healthscore.engine").joinpath(DEFAULT_MODELS_DIR)
    return {
        entry.name.rsplit(".", 1)[0]: entry.read_text(encoding="utf-8")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith((".yaml", ".yml"))
    }


async def publish_shipped_models(
    client: httpx.AsyncClient, api_url: str, api_key: str
) -> list[tuple[str, int]]:
    """Create a draft of each shipped model and publish it; returns (model id, version) pairs."""
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/yaml"}
    published: list[tuple[str, int]] = []
    for name, text in shipped_documents().items():
        draft = await client.post(f"{api_url}/v1/models", content=text, headers=headers)
        _expect(draft, name, "draft")
        model_id = draft.json()["model_id"]
        done = await client.post(f"{api_url}/v1/models/{model_id}/draft/publish", headers=headers)
        _expect(done, name, "publish")
        first = done.json()["published"][0]  # the new version; any demoted default follows
        published.append((first["model_id"], int(first["version"])))
    return published


def _expect(response: httpx.Response, name: str, step: str) -> None:
    if response.status_code not in (200, 201):
        raise PublishFailedError(
            f"{step} of model {name!r}: HTTP {response.status_code} {response.text[:500]}"
        )
