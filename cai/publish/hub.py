"""Pushing a published folder to the Hugging Face Hub with huggingface_hub.

The token comes from HF_TOKEN only and is handed to huggingface_hub, never written. `check` runs
before the folder is written, so that without a network, or with a refused token, the command
ends in one line having written nothing."""

from __future__ import annotations

import os
from pathlib import Path

from cai.core.errors import CaiError


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def check(repo: str):
    """An HfApi that reached the Hub and whose token it accepted; else CaiError, in one line."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    if "/" not in repo.strip("/"):
        raise CaiError(f"--push-to-hub takes OWNER/NAME, not '{repo}'")
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise CaiError("--push-to-hub needs a Hugging Face token in the environment variable HF_TOKEN (read from there only)")
    api = HfApi(token=token)
    try:
        api.whoami()
    except HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        if status in (401, 403):
            raise CaiError(f"the Hub at {constants.ENDPOINT} refused the token in HF_TOKEN ({status}); nothing was written") from None
        raise CaiError(f"the Hub at {constants.ENDPOINT} answered {status} ({_reason(e)}); nothing was written") from None
    except Exception as e:  # noqa: BLE001 - offline mode, DNS, refused connections, timeouts: one line each
        raise CaiError(f"cannot reach the Hugging Face Hub at {constants.ENDPOINT} ({_reason(e)}); nothing was written: "
                       "publish without --push-to-hub, or where the network allows") from None
    return api


def push(api, folder: Path, repo: str, private: bool) -> str:
    """Create the dataset repository if needed and upload the folder; returns the commit's address."""
    try:
        api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset",
                                 commit_message="cai publish")
    except Exception as e:  # noqa: BLE001 - the folder is written; the upload can be tried again
        raise CaiError(f"the upload to {repo} failed ({_reason(e)}); {folder} is written: run again to retry") from None
    return str(getattr(info, "commit_url", info))
