import httpx

from tests.support.fakes import RecordingPromptsStub
from tests.unit.gateway.conftest import basic

AUTH = basic("pk-1", "sk-1")
BASE = "/api/public/v2/prompts"


async def test_an_encoded_slash_keeps_a_folder_name_in_one_segment(
    client: httpx.AsyncClient, prompts_stub: RecordingPromptsStub
) -> None:
    response = await client.get(f"{BASE}/folder%2Fmy%20prompt?label=staging", headers=AUTH)
    assert response.status_code == 200
    [request] = prompts_stub.requests
    assert (request.name, request.label, request.resolve) == ("folder/my prompt", "staging", True)  # type: ignore[attr-defined]


async def test_a_chat_prompt_has_the_shape_the_sdks_parse(client: httpx.AsyncClient) -> None:
    body = (await client.get(f"{BASE}/x", headers=AUTH)).json()
    assert body["type"] == "chat" and body["config"] == {"model": "m"}
    assert body["prompt"] == [
        {"role": "system", "content": "Hi {{name}}"},
        {"type": "placeholder", "name": "history"},
    ]
    required = {"id", "name", "version", "type", "prompt", "config", "labels", "tags"}
    assert required <= body.keys() and body["resolutionGraph"] is None


async def test_etag_answers_304_when_unchanged(client: httpx.AsyncClient) -> None:
    first = await client.get(f"{BASE}/x", headers=AUTH)
    again = await client.get(f"{BASE}/x", headers={**AUTH, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


async def test_version_and_label_together_are_400(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/x?version=1&label=production", headers=AUTH)
    assert response.status_code == 400


async def test_a_non_integer_version_is_400(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{BASE}/x?version=one", headers=AUTH)).status_code == 400
    response = await client.patch(f"{BASE}/x/versions/one", json={"newLabels": []}, headers=AUTH)
    assert response.status_code == 400


async def test_patch_takes_the_name_before_versions(
    client: httpx.AsyncClient, prompts_stub: RecordingPromptsStub
) -> None:
    response = await client.patch(
        f"{BASE}/a%2Fb/versions/3", json={"newLabels": ["production"]}, headers=AUTH
    )
    assert response.status_code == 200
    [request] = prompts_stub.requests
    assert (request.name, request.version, list(request.new_labels)) == ("a/b", 3, ["production"])  # type: ignore[attr-defined]


async def test_delete_answers_204_without_a_body(client: httpx.AsyncClient) -> None:
    response = await client.delete(f"{BASE}/x?label=staging", headers=AUTH)
    assert response.status_code == 204 and response.content == b""


async def test_create_answers_201(client: httpx.AsyncClient) -> None:
    body = {"name": "n", "prompt": [{"role": "user", "content": "hi"}], "type": "chat"}
    response = await client.post(BASE, json=body, headers=AUTH)
    assert response.status_code == 201


async def test_malformed_create_bodies_are_400_never_500(client: httpx.AsyncClient) -> None:
    bad_bodies = [
        b"not json",
        b"[]",
        b'{"prompt": "no name"}',
        b'{"name": "n", "prompt": 5}',
        b'{"name": "n", "type": "audio", "prompt": "x"}',
        b'{"name": "n", "type": "chat", "prompt": "x"}',
        b'{"name": "n", "type": "chat", "prompt": [{"role": 1}]}',
        b'{"name": "n", "prompt": "x", "labels": "production"}',
    ]
    for content in bad_bodies:
        response = await client.post(BASE, content=content, headers=AUTH)
        assert response.status_code == 400, content
        assert response.json()["error"] == "InvalidRequestError"


async def test_list_page_and_limit_out_of_range_are_400(client: httpx.AsyncClient) -> None:
    """As Langfuse's page ≥ 1; a limit of 0 is refused too, not read as the default."""
    for query in ("limit=101", "limit=0", "page=0", "page=-1"):
        response = await client.get(f"{BASE}?{query}", headers=AUTH)
        assert response.status_code == 400, query
        assert response.json()["error"] == "InvalidRequestError"
