"""Real bandit on vulnerable/fixed pairs (17 CWEs), the detector catalogue, cache, pool and adapter errors."""

from __future__ import annotations

import pytest

from purpcode.analyzers import (
    AnalyzerUnavailable,
    Finding,
    bandit_detectors,
    get_analyzer,
)
from purpcode.analyzers.bandit_analyzer import BanditAnalyzer, chunk_by_lines

# cwe -> (expected detector, vulnerable code, fixed code). The fixed code must have no MEDIUM+ finding.
PAIRS: dict[str, tuple[str, str, str]] = {
    "CWE-78": (
        "B602",
        "import subprocess\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n",
        "import subprocess\ndef run(args):\n    return subprocess.run(args, check=True)\n",
    ),
    "CWE-89": (
        "B608",
        "def find(cur, name):\n    cur.execute(\"SELECT * FROM users WHERE name = '%s'\" % name)\n    return cur.fetchall()\n",
        'def find(cur, name):\n    cur.execute("SELECT * FROM users WHERE name = ?", (name,))\n    return cur.fetchall()\n',
    ),
    "CWE-502": (
        "B301",
        "import pickle\ndef load(blob):\n    return pickle.loads(blob)\n",
        "import json\ndef load(blob):\n    return json.loads(blob)\n",
    ),
    "CWE-20": (
        "B506",
        "import yaml\ndef load(text):\n    return yaml.load(text)\n",
        "import yaml\ndef load(text):\n    return yaml.safe_load(text)\n",
    ),
    "CWE-327": (
        "B324",
        "import hashlib\ndef digest(pw):\n    return hashlib.md5(pw).hexdigest()\n",
        "import hashlib\ndef digest(pw):\n    return hashlib.sha256(pw).hexdigest()\n",
    ),
    "CWE-295": (
        "B501",
        "import requests\ndef fetch(url):\n    return requests.get(url, verify=False, timeout=10)\n",
        "import requests\ndef fetch(url):\n    return requests.get(url, timeout=10)\n",
    ),
    "CWE-400": (
        "B113",
        "import requests\ndef fetch(url):\n    return requests.get(url)\n",
        "import requests\ndef fetch(url):\n    return requests.get(url, timeout=10)\n",
    ),
    "CWE-94": (
        "B201",
        "from flask import Flask\napp = Flask(__name__)\nif __name__ == '__main__':\n    app.run(debug=True)\n",
        "from flask import Flask\napp = Flask(__name__)\nif __name__ == '__main__':\n    app.run(debug=False)\n",
    ),
    "CWE-79": (
        "B308",
        "from django.utils.safestring import mark_safe\ndef greet(name):\n    return mark_safe('<b>' + name + '</b>')\n",
        "from django.utils.html import format_html\ndef greet(name):\n    return format_html('<b>{}</b>', name)\n",
    ),
    "CWE-377": (
        "B306",
        "import tempfile\ndef scratch():\n    return open(tempfile.mktemp(), 'w')\n",
        "import tempfile\ndef scratch():\n    return tempfile.NamedTemporaryFile('w')\n",
    ),
    "CWE-605": (
        "B104",
        "import socket\ndef serve():\n    s = socket.socket()\n    s.bind(('0.0.0.0', 8080))\n    return s\n",
        "import socket\ndef serve():\n    s = socket.socket()\n    s.bind(('127.0.0.1', 8080))\n    return s\n",
    ),
    "CWE-732": (
        "B103",
        "import os\ndef share(path):\n    os.chmod(path, 0o777)\n",
        "import os\ndef share(path):\n    os.chmod(path, 0o600)\n",
    ),
    "CWE-326": (
        "B505",
        "from cryptography.hazmat.primitives.asymmetric import rsa\n"
        "def key():\n    return rsa.generate_private_key(public_exponent=65537, key_size=1024)\n",
        "from cryptography.hazmat.primitives.asymmetric import rsa\n"
        "def key():\n    return rsa.generate_private_key(public_exponent=65537, key_size=3072)\n",
    ),
    "CWE-319": (
        "B321",
        "import ftplib\ndef upload(host):\n    return ftplib.FTP(host)\n",
        "import paramiko\ndef upload(host):\n    c = paramiko.SSHClient()\n    c.load_system_host_keys()\n"
        "    c.connect(host)\n    return c.open_sftp()\n",
    ),
    "CWE-22": (
        "B202",
        "import tarfile\ndef unpack(path, dest):\n    with tarfile.open(path) as tar:\n        tar.extractall(dest)\n",
        "import tarfile\ndef unpack(path, dest):\n    with tarfile.open(path) as tar:\n        tar.extractall(dest, filter='data')\n",
    ),
    "CWE-494": (
        "B615",
        "from transformers import AutoModel\ndef load():\n    return AutoModel.from_pretrained('org/model')\n",
        "from transformers import AutoModel\ndef load():\n"
        "    return AutoModel.from_pretrained('org/model', revision='0123456789abcdef0123456789abcdef01234567')\n",
    ),
    "CWE-155": (
        "B609",
        "import subprocess\ndef backup():\n    subprocess.Popen('tar cf backup.tar *', shell=True)\n",
        "import subprocess\ndef backup(files):\n    subprocess.run(['tar', 'cf', 'backup.tar', '--', *files], check=True)\n",
    ),
}


@pytest.fixture(scope="module")
def bandit() -> BanditAnalyzer:
    analyzer = get_analyzer("bandit", min_severity="MEDIUM", workers=0)
    assert isinstance(analyzer, BanditAnalyzer)
    return analyzer


def test_pairs_cover_at_least_15_cwes() -> None:
    assert len(PAIRS) >= 15


@pytest.mark.parametrize("cwe", sorted(PAIRS))
def test_vulnerable_flagged_fixed_clean(bandit: BanditAnalyzer, cwe: str) -> None:
    detector, vulnerable, fixed = PAIRS[cwe]
    bad, good = bandit.analyze_batch([vulnerable, fixed])
    hits = [f for f in bad if f.detector_id == detector]
    assert hits, f"{detector} not raised on the {cwe} example: {bad}"
    assert hits[0].cwe == cwe
    assert hits[0].severity in ("MEDIUM", "HIGH")
    assert hits[0].line >= 1 and hits[0].message
    assert good == [], f"fixed {cwe} example still flagged: {good}"


def test_low_findings_kept_only_when_asked() -> None:
    code = "import subprocess\n"  # B404: LOW
    assert get_analyzer("bandit", workers=0).analyze(code)[0].detector_id == "B404"
    assert get_analyzer("bandit", workers=0, min_severity="MEDIUM").analyze(code) == []


def test_nosec_comments_cannot_silence_the_analyzer(bandit: BanditAnalyzer) -> None:
    code = "import subprocess\nsubprocess.call(cmd, shell=True)  # nosec\n"
    assert [f.detector_id for f in bandit.analyze(code)] == ["B602"]


def test_syntax_error_is_reported_not_clean(bandit: BanditAnalyzer) -> None:
    (res,) = bandit.analyze_batch_detailed(["def f(:\n    pass\n"])
    assert res.findings == () and res.error is not None and "syntax" in res.error


def test_cache_by_code_hash(bandit: BanditAnalyzer) -> None:
    code = "import pickle\nobj = pickle.loads(data)  # cache test\n"
    before_hits = bandit.cache.hits
    first = bandit.analyze_batch([code, code, code])
    assert first[0] == first[1] == first[2] and first[0][0].detector_id == "B301"
    assert bandit.analyze_batch([code]) == [first[0]]
    assert bandit.cache.hits > before_hits


def test_process_pool_matches_in_process() -> None:
    codes = [v for _, v, _ in PAIRS.values()] * 3 + [f"x{i} = {i}\n" * 30 for i in range(20)]
    pooled = BanditAnalyzer(min_severity="MEDIUM", workers=2, inline_below=1)
    try:
        got = pooled.analyze_batch(codes)
        assert pooled._pool is not None  # the batch really went through worker processes
    finally:
        pooled.close()
    assert got == BanditAnalyzer(min_severity="MEDIUM", workers=0).analyze_batch(codes)


def test_chunk_by_lines_balances_and_keeps_every_index() -> None:
    codes = ["a\n" * 100, "b\n", "c\n", "d\n" * 100, "e\n"]
    chunks = chunk_by_lines(codes, 2)
    assert sorted(i for c in chunks for i in c) == list(range(5))
    assert len(chunks) >= 2


def test_detector_catalogue_reads_installed_bandit() -> None:
    detectors = {d.detector_id: d for d in bandit_detectors()}
    assert len(detectors) > 50
    assert detectors["B602"].name == "subprocess_popen_with_shell_equals_true"
    assert detectors["B602"].cwe == "CWE-78" and detectors["B602"].severity == "HIGH"
    assert detectors["B301"].cwe == "CWE-502" and detectors["B301"].severity == "MEDIUM"  # blacklist entry
    assert detectors["B506"].cwe == "CWE-20"


def test_finding_severity_order() -> None:
    f = Finding(detector_id="X", severity="MEDIUM")
    assert f.at_least("LOW") and f.at_least("MEDIUM") and not f.at_least("HIGH")


@pytest.mark.parametrize("kind", ["semgrep", "codeql"])
def test_missing_binary_is_a_clear_error(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv(f"PURPCODE_{kind.upper()}", raising=False)
    with pytest.raises(AnalyzerUnavailable, match=f"no `{kind}` binary"):
        get_analyzer(kind)


def test_unknown_analyzer_named() -> None:
    with pytest.raises(ValueError, match="bandit, semgrep, codeql"):
        get_analyzer("codeguru")


def test_semgrep_project_rules_on_the_same_pairs() -> None:
    from support.tools import require_tool

    binary = require_tool(
        "semgrep", "pip install semgrep in its own venv, or set PURPCODE_SEMGREP", env="PURPCODE_SEMGREP"
    )
    analyzer = get_analyzer("semgrep", min_severity="MEDIUM", binary=binary)
    codes = [c for _, bad, good in PAIRS.values() for c in (bad, good)] + ["def f(:\n"]
    results = analyzer.analyze_batch_detailed(codes)
    for i, cwe in enumerate(PAIRS):
        bad, good = results[2 * i], results[2 * i + 1]
        assert bad.findings, f"semgrep rules miss the {cwe} example"
        assert all(f.analyzer == "semgrep" and f.detector_id.startswith("purpcode.") for f in bad.findings)
        assert good.findings == (), f"semgrep flags the fixed {cwe} example: {good.findings}"
    assert results[-1].error is not None and "syntax" in results[-1].error


def test_sarif_parsing_maps_files_rules_cwe_and_severity() -> None:
    from purpcode.analyzers.external import parse_sarif

    sarif = {
        "runs": [
            {
                "tool": {
                    "driver": {"name": "CodeQL", "rules": []},
                    "extensions": [
                        {
                            "name": "codeql/python-queries",
                            "rules": [
                                {
                                    "id": "py/command-line-injection",
                                    "name": "py/command-line-injection",
                                    "properties": {
                                        "tags": ["security", "external/cwe/cwe-078", "external/cwe/cwe-088"],
                                        "security-severity": "9.8",
                                        "precision": "high",
                                    },
                                },
                                {
                                    "id": "py/weak-crypto-key",
                                    "properties": {
                                        "tags": ["external/cwe/cwe-326"],
                                        "security-severity": "5.0",
                                    },
                                },
                            ],
                        }
                    ],
                },
                "results": [
                    {
                        "ruleId": "py/command-line-injection",
                        "message": {"text": "This command line depends on a user-provided value."},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": "s000001.py"},
                                    "region": {"startLine": 7},
                                }
                            }
                        ],
                    },
                    {
                        "ruleId": "py/weak-crypto-key",
                        "message": {"text": "Creation of an RSA key uses 1024 bits."},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": "s000000.py"},
                                    "region": {"startLine": 2},
                                }
                            }
                        ],
                    },
                    {
                        "ruleId": "py/other",
                        "message": {"text": "outside the batch"},
                        "locations": [{"physicalLocation": {"artifactLocation": {"uri": "lib/x.py"}}}],
                    },
                ],
            }
        ]
    }
    first, second = parse_sarif(sarif, 2)
    (weak,) = first.findings
    (inj,) = second.findings
    assert (inj.detector_id, inj.cwe, inj.severity, inj.confidence, inj.line) == (
        "py/command-line-injection",
        "CWE-78",
        "HIGH",
        "HIGH",
        7,
    )
    assert (weak.cwe, weak.severity, weak.analyzer) == ("CWE-326", "MEDIUM", "codeql")
