"""A few calls of Label Studio's REST API: create a project, import tasks, export the annotations.

Label Studio runs as a server of its own (in its own virtual environment: `make label-studio`);
`cai` only talks to it over HTTP. The API key comes from LABEL_STUDIO_API_KEY only and travels in
the `Authorization: Token KEY` header, never written anywhere (Label Studio's legacy token: the
server needs `--enable-legacy-api-token`, or the setting in its organization's page).
"""

from __future__ import annotations

import os
import time

import httpx

from cai.core.errors import CaiError

KEY_VARIABLE = "LABEL_STUDIO_API_KEY"


def api_key() -> str:
    key = os.environ.get(KEY_VARIABLE, "").strip()
    if not key:
        raise CaiError(f"set {KEY_VARIABLE} to your Label Studio API token (Account & Settings → Legacy Token)")
    return key


class LabelStudio:
    """A client of one Label Studio server."""

    def __init__(self, url: str, key: str | None = None, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, timeout=timeout,
                                   headers={"Authorization": f"Token {key or api_key()}"})

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise CaiError(f"cannot reach Label Studio at {self.url} ({type(e).__name__}: {e})") from None
        if response.status_code in (401, 403):
            raise CaiError(f"Label Studio at {self.url} refused the key (HTTP {response.status_code}): set "
                           f"{KEY_VARIABLE} to a legacy API token it accepts")
        if response.status_code == 404:
            raise CaiError(f"Label Studio at {self.url}: {method} {path}: not found (HTTP 404)")
        if response.status_code >= 400:
            raise CaiError(f"Label Studio at {self.url}: {method} {path}: HTTP {response.status_code}: "
                           f"{response.text[:300]}")
        return response

    def create_project(self, title: str, label_config: str, description: str = "") -> int:
        body = {"title": title, "label_config": label_config, "description": description}
        return self.request("POST", "/api/projects/", json=body).json()["id"]

    def import_tasks(self, project: int, tasks: list[dict], wait: float = 60.0) -> int:
        """Import the tasks and wait until the project holds them all; the project's task count."""
        self.request("POST", f"/api/projects/{project}/import", json=tasks)
        deadline = time.monotonic() + wait
        while (count := self.project(project).get("task_number") or 0) < len(tasks):
            if time.monotonic() > deadline:
                raise CaiError(f"Label Studio project {project} holds {count} of {len(tasks)} tasks after {wait:.0f} s")
            time.sleep(0.5)
        return count

    def project(self, project: int) -> dict:
        return self.request("GET", f"/api/projects/{project}/").json()

    def tasks(self, project: int) -> list[dict]:
        """Every task of the project with its annotations (skipped ones included), as Label
        Studio's JSON export writes them."""
        params = {"exportType": "JSON", "download_all_tasks": "true"}
        return self.request("GET", f"/api/projects/{project}/export", params=params).json()
