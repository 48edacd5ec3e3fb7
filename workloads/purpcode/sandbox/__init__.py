"""The reward sandbox: an isolated, fast code-execution service (SandboxFusion-compatible `POST /run_code`).

Modules: `models` (wire format), `client` (sync/async clients), `harness` (reward-hack-proof test programs),
`server` (FastAPI service), `jail`/`zygote` (bubblewrap + warm fork-server isolation). Kept import-light.
"""
