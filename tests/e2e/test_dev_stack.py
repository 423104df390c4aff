"""The path a new user walks, exactly as README.md writes it (issue 8).

The stack runs in a fresh copy of the working tree: every file git tracks, as it is now
(uncommitted edits included, so a README change is tested before it is committed), and
nothing else, so no `.justice` or `demo-output` from earlier runs. It is started with the
README's first command as the Makefile runs it, from the copy's root, with no JUSTICE_*
variables: the state dir is the default relative `.justice`, exactly as for a user.

Why not `make run` itself: its recipe is `$(BIN)/justice run` behind the `.venv` stamp, and
in a fresh copy make would first build a second `.venv` (minutes of pip). So the copy gets
this test's own venv as `.venv` (a symlink), and the test reads the `run` recipe from the
Makefile and runs that command, `.venv/bin/justice run`, with the user's cwd and
environment. Ports are the defaults when they are free; only when one is taken are all
three chosen free and passed as JUSTICE_LISTEN, JUSTICE_DEV_NATS_PORT, JUSTICE_DEV_S3_PORT.

Then every command of the README's "Trying it" section is taken from README.md itself,
its placeholders filled from what earlier commands printed or wrote, and run verbatim in a
shell from the copy's root; each must exit 0, or print the refusal its comment shows.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import nats
import pytest
import typer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from typer.core import TyperGroup

from justice.cli.main import app as cli_app
from justice.devstack.pki import DevPki
from justice.devstack.supervised import free_tcp_ports
from justice.platform.config import Settings

REPO = Path(__file__).resolve().parents[2]
_DEFAULTS = Settings.model_fields
# The variables that carry the three ports `justice run` binds, and their defaults.
PORT_VARIABLES = {
    "JUSTICE_LISTEN": int(str(_DEFAULTS["listen"].default).rpartition(":")[2]),
    "JUSTICE_DEV_NATS_PORT": int(_DEFAULTS["dev_nats_port"].default),
    "JUSTICE_DEV_S3_PORT": int(_DEFAULTS["dev_s3_port"].default),
}
PASSPHRASE = _DEFAULTS["key_passphrase"].default.get_secret_value().encode()
PURPOSE = "e2e check"


# -- the README and the Makefile, as written ----------------------------------------------


def _section(markdown: str, title: str) -> str:
    start = markdown.index(f"\n## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def _commands(markdown: str) -> list[str]:
    """Every shell command of the fenced sh blocks, continuation lines joined."""
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", markdown, flags=re.DOTALL):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [line for line in joined.splitlines() if line.strip()]
    return commands


def _make_recipe(target: str) -> list[str]:
    """The target's recipe lines, with the Makefile's own variables substituted."""
    text = (REPO / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*[:?]?=\s*(.*)$", text, flags=re.MULTILINE))
    recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, flags=re.MULTILINE)
    assert recipe, f"no {target} target in the Makefile"
    lines = [line.strip() for line in recipe.group(1).splitlines()]
    for _ in range(5):
        lines = [re.sub(r"\$\((\w+)\)", lambda m: variables[m.group(1)], x) for x in lines]
    return lines


def _refusal(command: str) -> str | None:
    """The status a command's comment says it gets ("# PERMISSION_DENIED: ..."), if any."""
    comment = command.partition(" # ")[2].strip()
    code = comment.partition(":")[0]
    return code if code in grpc.StatusCode.__members__ else None


# -- the stack, started as the user starts it ---------------------------------------------


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports() -> dict[str, str]:
    """Nothing when the default ports are free; else free ports for all three."""
    if all(_bindable(port) for port in PORT_VARIABLES.values()):
        return {}
    listen, nats_port, s3_port = free_tcp_ports(3)
    return {
        "JUSTICE_LISTEN": f"127.0.0.1:{listen}",
        "JUSTICE_DEV_NATS_PORT": str(nats_port),
        "JUSTICE_DEV_S3_PORT": str(s3_port),
    }


def _fresh_copy(root: Path) -> Path:
    """The working tree as a fresh clone of it has it, with this test's venv as .venv."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():  # a deleted, not yet committed file is not there
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    venv = Path(sys.prefix)
    assert (venv / "bin" / "justice").exists(), f"run the tests with the venv's python ({venv})"
    (root / ".venv").symlink_to(venv)
    return root


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def port(self) -> int:
        listen = self.env.get("JUSTICE_LISTEN", f":{PORT_VARIABLES['JUSTICE_LISTEN']}")
        return int(listen.rpartition(":")[2])

    @property
    def state(self) -> Path:
        return self.root / ".justice"

    def pki(self) -> DevPki:
        return DevPki(self.state / "pki", PASSPHRASE)

    def start(self) -> None:
        argv = shlex.split(_make_recipe("run")[-1])
        log = self.root.parent / f"run-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                argv, cwd=self.root, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.interrupt()
            raise

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"justice run exited:\n{self.logs[-1].read_text()[-3000:]}")
            # The client key is among the last PKI files written.
            if self.pki().client_paths("officer-1001")[1].exists():
                try:
                    with self.channel() as channel:
                        status = health_pb2_grpc.HealthStub(channel).Check(
                            health_pb2.HealthCheckRequest(), timeout=1
                        )
                    if status.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
            time.sleep(0.3)
        raise TimeoutError("justice run did not become healthy")

    def channel(self) -> grpc.Channel:
        cert, key = self.pki().client_paths("officer-1001")
        credentials = grpc.ssl_channel_credentials(
            self.pki().ca_path.read_bytes(), key.read_bytes(), cert.read_bytes()
        )
        return grpc.secure_channel(f"localhost:{self.port}", credentials)

    def children(self) -> list[int]:
        # Every thread's children: nats-server and weed are started from a worker thread.
        assert self.process is not None
        tasks = Path(f"/proc/{self.process.pid}/task")
        return [int(pid) for t in tasks.glob("*/children") for pid in t.read_text().split()]

    def interrupt(self) -> list[int]:
        """Ctrl-C: SIGINT to `justice run`, which stops its children; returns their PIDs."""
        if self.process is None or self.process.poll() is not None:
            return []
        children = self.children()
        self.process.send_signal(signal.SIGINT)
        try:
            assert self.process.wait(timeout=60) == 0
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        return children

    def sh(self, command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        # The README's commands, verbatim, as a user types them into a shell.
        return subprocess.run(  # noqa: S602
            command,
            shell=True,
            cwd=cwd or self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def justice(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.root / ".venv" / "bin" / "justice"), *args],
            cwd=cwd or self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = _fresh_copy(tmp_path_factory.mktemp("first-run") / "justice-exchange")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUSTICE_")} | _ports()
    running = Stack(root, env)
    running.start()
    try:
        yield running
    finally:
        running.interrupt()


def _gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()


# -- the tests ------------------------------------------------------------------------------


def test_the_first_command_serves_on_the_default_relative_state_dir(stack: Stack) -> None:
    readme = (stack.root / "README.md").read_text()
    first = shlex.split(_commands(readme)[0], comments=True)
    assert first == ["make", "run"]
    assert _make_recipe("run")[-1] == ".venv/bin/justice run"
    # Everything is under ./.justice of the folder it was started in.
    assert (stack.state / "justice.db").exists()
    assert (stack.state / "nats" / "nats-server.conf").exists()
    assert (stack.state / "s3" / "credentials.json").exists()
    # nats-server and weed run in their own folders: they get absolute paths only.
    children = stack.children()
    assert len(children) >= 2
    for pid in children:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        paths = [a.partition("=")[2] or a for a in argv if "/" in a]
        assert all(Path(p).is_absolute() for p in paths), argv
    with stack.channel() as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert "justice.reports.v1.ReportService" in services


def _learn(values: dict[str, str], stack: Stack, output: str) -> None:
    """Fill the placeholders from what a command printed or wrote."""
    for found in (stack.root / "demo-output").glob("report-*-v1.xml"):
        values["id"] = found.name.removeprefix("report-").removesuffix("-v1.xml")
    if stored := re.search(r"stored evidence/(\S+)", output):
        values["evidence"] = stored.group(1)


def test_every_example_of_trying_it_works_verbatim(stack: Stack) -> None:
    section = _section((stack.root / "README.md").read_text(), "Trying it")
    commands = _commands(section)
    assert len(commands) >= 6, commands
    values: dict[str, str] = {}
    for written in commands:
        missing = set(re.findall(r"<(\w+)>", written)) - set(values)
        assert not missing, f"nothing before `{written}` tells its {missing}"
        command = re.sub(r"<(\w+)>", lambda m: values[m.group(1)], written)
        result = stack.sh(command)
        output = result.stdout + result.stderr
        refusal = _refusal(written)
        if refusal is None:
            assert result.returncode == 0, f"{written}\n{output}"
        else:
            assert result.returncode == 1, f"{written}\n{output}"
            assert refusal in result.stdout, f"{written}\n{output}"
        _learn(values, stack, result.stdout)
    # What the examples say they produce.
    assert (stack.root / "copy.txt").read_bytes() == (
        stack.root / "demo-output" / "VERIFY.txt"
    ).read_bytes()
    # The grpcurl example in the prose names the state dir's PKI files: they exist.
    for named in re.findall(r"\.justice/[\w./-]+", section):
        assert (stack.root / named).exists(), named


# Subcommands that do not call the running stack's gRPC API, and why.
NOT_CALLING_THE_SERVER = {
    ("run",): "starts the stack",
    ("serve",): "the production entry point",
    ("verify",): "offline by design (the README test runs it)",
    ("audit", "verify-bundle"): "offline by design",
    ("exchange", "nats-config"): "reads the database, writes a file",
    ("exchange", "partner-credentials"): "derives a password",
    ("exchange", "platform-credentials"): "derives a password",
    ("migrate",): "a deployment job on the database, no gRPC (test_deploy_jobs.py)",
    ("bootstrap-storage",): "a deployment job on S3, no gRPC (test_deploy_jobs.py)",
    ("exchange", "relay"): "a long-running NATS worker, no gRPC",
    ("exchange", "inbound"): "a long-running NATS worker, no gRPC",
    ("partner", "listen"): "the partner's side, on NATS (the demo runs the same SDK)",
    ("partner", "send"): "the partner's side, on NATS",
}


def _subcommands() -> set[tuple[str, ...]]:
    def walk(group: TyperGroup, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        for name, command in group.commands.items():
            if isinstance(command, TyperGroup):
                yield from walk(command, (*prefix, name))
            else:
                yield (*prefix, name)

    root = typer.main.get_command(cli_app)
    assert isinstance(root, TyperGroup)
    return set(walk(root, ()))


@dataclass
class Driver:
    """Runs `justice` subcommands against the stack and remembers which ones it ran."""

    stack: Stack
    driven: set[tuple[str, ...]] = field(default_factory=set)

    def __call__(
        self,
        path: str,
        *args: str,
        as_: str = "",
        purpose: str = "",
        refused: str = "",
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        words = path.split()
        options = [*(["--as", as_] if as_ else []), *(["--purpose", purpose] if purpose else [])]
        result = self.stack.justice(*options, *words, *args, env=env)
        output = result.stdout + result.stderr
        if refused:
            assert result.returncode == 1, output
            assert refused in result.stdout, output
        else:
            assert result.returncode == 0, output
        self.driven.add(tuple(words))
        return result


def test_every_subcommand_that_calls_the_server_works_against_it(
    stack: Stack, tmp_path: Path
) -> None:
    run = Driver(stack)
    subcommands = _subcommands()
    assert set(NOT_CALLING_THE_SERVER) <= subcommands

    # The demo (unary calls, and the partner SDK over NATS); its output verifies offline.
    demo = run("demo", "--out", str(tmp_path / "demo"))
    assert "the report is ACKNOWLEDGED" in demo.stdout
    assert "NOTICE_SENT, letter in nl" in demo.stdout
    assert list((tmp_path / "demo").glob("fines-*-1-nl.pdf"))
    assert list((tmp_path / "demo").glob("fines-*-1-nl.xml"))
    versions = sorted((tmp_path / "demo").glob("report-*-v*.xml"))
    assert [p.name[-6:] for p in versions] == ["v1.xml", "v2.xml"]
    submitted = "reports/" + versions[0].name.split("-")[1]
    verify_commands = [
        line
        for line in (tmp_path / "demo" / "VERIFY.txt").read_text().splitlines()
        if line.startswith("xmlsec1")
    ]
    # Both report versions, the seizure receipt's XML, the custody certificate and the court
    # registry's acceptance (signed with its own key).
    assert len(verify_commands) == 5
    assert len(list((tmp_path / "demo").glob("acceptance-*.xml"))) == 1
    assert len(list((tmp_path / "demo").glob("receipt-*.pdf"))) == 1
    assert "the prosecutor simulator decided DESTROY over NATS" in demo.stdout
    for command in verify_commands:
        checked = subprocess.run(
            shlex.split(command), cwd=tmp_path / "demo", capture_output=True, check=False
        )
        assert checked.returncode == 0, checked.stderr
    (script_line,) = [
        line
        for line in (tmp_path / "demo" / "VERIFY.txt").read_text().splitlines()
        if line.startswith("python3 ")
    ]
    head = subprocess.run(
        shlex.split(script_line), cwd=tmp_path / "demo", capture_output=True, text=True, check=False
    )
    assert head.returncode == 0, head.stdout
    assert len(head.stdout.strip()) == 64
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(versions[1].read_bytes().replace(b"rood zadel", b"rood zadeL"))
    refused = stack.justice("verify", str(tampered), "--ca", str(tmp_path / "demo" / "ca.pem"))
    assert refused.returncode == 1
    assert "INVALID" in refused.stdout
    # The prosecutor simulator connected as its own user: nobody gets in without one.
    assert not _nats_admits_anonymous(stack)

    # Reports: unary calls; the reads declare a purpose.
    created = run(
        "report create",
        *("--case", "AN.12.L3.000001/26", "--narrative", "Een fiets werd gestolen."),
        *("--place", "Gent", "--offence", "43A=Art. 461 Sw."),
    )
    name = json.loads(created.stdout)["name"]
    run("report get", name, purpose=PURPOSE)
    run("report get", name, refused="PURPOSE_REQUIRED")
    listed = run("report list", purpose=PURPOSE, env={"COLUMNS": "200"})
    assert name in listed.stdout
    run("report sign", name)
    run("report sign", name, as_="officer-1002", refused="PERMISSION_DENIED")
    run("report submit", name)
    run("report amend", name)
    run("report export", f"{name}@1", "--out", str(tmp_path), purpose=PURPOSE)
    assert (tmp_path / f"report-{name.split('/')[1]}-v1.xml").exists()

    # Evidence: upload is client-streaming, download server-streaming.
    original = tmp_path / "photo.jpg"
    original.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    uploaded = run(
        "evidence upload", str(original), "--case", "AN.12.L3.004512/26", "--report", submitted
    )
    match = re.search(r"stored (evidence/\S+)", uploaded.stdout)
    assert match, uploaded.stdout
    evidence = match.group(1)
    listed = run("evidence list", "--report", submitted, purpose=PURPOSE)
    assert evidence in listed.stdout
    copy = tmp_path / "copy.jpg"
    run("evidence download", evidence, "--out", str(copy), purpose=PURPOSE)
    assert copy.read_bytes() == original.read_bytes()
    by_env = tmp_path / "by-env.jpg"
    run(
        "evidence download",
        *(evidence, "--out", str(by_env), "--offset", "1000", "--length", "5000"),
        env={"JUSTICE_PURPOSE": PURPOSE},
    )
    assert by_env.read_bytes() == original.read_bytes()[1000:6000]
    refused_out = tmp_path / "refused.jpg"
    run("evidence download", evidence, "--out", str(refused_out), refused="PURPOSE_REQUIRED")
    assert not refused_out.exists()
    run("evidence verify", evidence)
    share = run(
        "evidence share",
        *(evidence, "--partner", "prosecutor-antwerp", "--purpose", "court file"),
        purpose=PURPOSE,
    )
    assert '"url"' in share.stdout
    held = run("evidence hold", evidence, as_="prosecutor-antwerp")
    assert '"legal_hold": true' in held.stdout
    run("evidence hold", evidence, "--release", as_="prosecutor-antwerp")
    run("evidence sweep")

    # Custody: seize, hand over, decide, dispose with four eyes, export.
    goods = tmp_path / "items.json"
    drugs = {"substance": "cannabis", "net_weight": "10.5", "unit": "g"}
    goods.write_text(
        json.dumps([{"category": "DRUGS", "description": "bag", "seal": "E2E-1", "drugs": drugs}])
    )
    seized = json.loads(
        run(
            "custody seize",
            *("--case", "AN.12.L3.000003/26", "--report", "PV 3/26", "--place", "Gent"),
            *("--ground", "Art. 35 Sv.", "--items", str(goods), "--person", "Jan Peeters"),
        ).stdout
    )
    item, seizure = seized["items"][0]["name"], seized["seizure"]["name"]
    run("custody get", item)
    run("custody transfer", item, "--to", "custodian-2001")
    run("custody accept", item, as_="officer-1002", refused="PERMISSION_DENIED")
    run("custody accept", item, "--weight", "10.5", as_="custodian-2001")
    # Seized (1), transferred (2), accepted (3): the acceptance signed with the receiver's key.
    signed = tmp_path / "acceptance"
    run("custody acceptance", item, "--sequence", "3", "--out", str(signed), as_="custodian-2001")
    assert len(list(signed.glob("acceptance-*-3.xml"))) == 1
    vault = ("--name", "Gent, kluis A", "--unit", "Seized Goods Gent", "--kind", "VAULT")
    run("custody create-location", "gent.r1.a", *vault, "--secure", as_="custody-supervisor-2101")
    run("custody move", item, "--to", "locations/gent.r1.a", as_="custodian-2001")
    held = run("custody list", as_="custodian-2001", env={"COLUMNS": "300"})
    assert item in held.stdout
    run("custody checkout", item, "--to", "lab", as_="custodian-2001")
    run("custody checkin", item, as_="custodian-2001")
    run(
        "custody decide",
        *(item, "--decision", "DESTROY", "--reference", "PK-E2E-1", "--authority", "PK Gent"),
        as_="prosecutor-antwerp",
    )
    burn = ("--witness", "Koen Wouters", "--method", "incineration")
    requested = run("custody request-disposal", item, *burn, as_="custodian-2001")
    approval = json.loads(requested.stdout)["name"]
    run("custody approve", approval, as_="custodian-2001", refused="PERMISSION_DENIED")
    run("custody approve", approval, as_="custody-supervisor-2101")
    run("custody dispose", item, "--approval", approval, *burn, as_="custodian-2001")
    run("custody verify", item, as_="custodian-2001")
    run("custody certificate", item, "--out", str(tmp_path / "custody"), as_="custodian-2001")
    run("custody receipt", seizure, "--out", str(tmp_path / "custody"), purpose=PURPOSE)
    assert len(list((tmp_path / "custody").iterdir())) == 3

    # Exchange administration.
    partners = run("exchange partners", as_="access-admin-5001", env={"COLUMNS": "300"})
    assert "prosecutor-antwerp" in partners.stdout
    stack.pki().issue_signing("court-gent", "Court of First Instance", "Gent")
    run(
        "exchange add-partner",
        *("court-gent", "--kind", "COURT", "--sends", "receipt"),
        *("--certificate", str(stack.pki().signing_paths("court-gent")[0])),
        as_="access-admin-5001",
    )
    deliveries = run("exchange deliveries", as_="auditor-4001", env={"COLUMNS": "300"})
    delivery = re.search(r"deliveries/[0-9a-f-]+", deliveries.stdout)
    assert delivery, deliveries.stdout
    run(
        "exchange redeliver",
        delivery.group(0),
        as_="justice-server",
        refused="NOT_REDELIVERABLE",  # only rejected or expired ones are sent again
    )
    # The partner's signed receipt, as kept, checks offline.
    receipt = tmp_path / "receipt.pb"
    run("exchange receipt", delivery.group(0), "--out", str(receipt), as_="auditor-4001")
    checked = stack.justice("verify", "--receipt", str(receipt), cwd=stack.root)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    run("exchange dead-letters", as_="auditor-4001")
    run("exchange status", as_="auditor-4001")

    # Audit: the auditor's reads declare a purpose too.
    run("audit query", "--resource", name, as_="auditor-4001", purpose=PURPOSE)
    run("audit verify", as_="auditor-4001")
    run("audit export", "--out", str(tmp_path / "audit.xml"), as_="auditor-4001", purpose=PURPOSE)
    run("audit alerts", as_="auditor-4001")
    # The witnessed log: the dev stack configures no witness, so nothing is cosigned yet
    # (tests/integration/test_audit_witness.py has two partners cosign and verifies offline).
    run("audit checkpoint", as_="auditor-4001", refused="NOT_COSIGNED")
    proof = tmp_path / "record-1.pb"
    run("audit proof", "1", "--out", str(proof), as_="auditor-4001", refused="NOT_COSIGNED")
    assert not proof.exists()

    # Fines, as the demo fines officer: a domestic plate (no foreign lookup) goes to the
    # national procedure, is read with a purpose, paid by an unknown reference (kept
    # unmatched), and refused the moves its state does not allow.
    officer = "fines-officer-3001"
    registered = run(
        "fines register",
        *("--plate", "1-ABC-123", "--country", "BE", "--offence", "SPEEDING"),
        *("--provision", "art. 11.1 WVR", "--place", "E40 km 3", "--speed", "140/133/120"),
        as_=officer,
    )
    fine = json.loads(registered.stdout)["name"]
    run("fines get", fine, as_=officer, purpose=PURPOSE)
    assert fine in run("fines list", as_=officer, purpose=PURPOSE, env={"COLUMNS": "200"}).stdout
    run("fines notice", fine, as_=officer, refused="NOT_NOTIFIABLE")
    run(
        "fines driver",
        *(fine, "--name", "Jan Peeters", "--street", "Meir 1", "--postal-code", "2000"),
        *("--city", "Antwerpen", "--country", "BE"),
        as_=officer,
        refused="HOLDER_NOT_LEGAL_PERSON",
    )
    paid = run("fines pay", "--reference", "+++123/4567/89002+++", "--amount", "5", as_=officer)
    assert "UNMATCHED" in paid.stdout
    run("fines contest", fine, "--grounds", "not me", as_=officer, refused="ILLEGAL_TRANSITION")
    run("fines decide", fine, "--cancelled", as_=officer, refused="NOT_CONTESTED")
    run("fines stats", as_=officer)
    run("fines letters", fine, "--out", str(tmp_path / "letters"), as_=officer, purpose=PURPOSE)

    # The global options reach the stack from anywhere, with no environment.
    elsewhere = stack.justice(
        *("--listen", f"127.0.0.1:{stack.port}", "--state-dir", str(stack.state)),
        *("--purpose", PURPOSE, "report", "get", name),
        cwd=tmp_path,
    )
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr

    missing = subcommands - set(NOT_CALLING_THE_SERVER) - run.driven
    assert not missing, f"subcommands without a test against the running stack: {missing}"


def _nats_admits_anonymous(stack: Stack) -> bool:
    port = int(stack.env.get("JUSTICE_DEV_NATS_PORT", PORT_VARIABLES["JUSTICE_DEV_NATS_PORT"]))

    async def attempt() -> bool:
        try:
            client = await nats.connect(
                f"nats://127.0.0.1:{port}", allow_reconnect=False, connect_timeout=2
            )
        except (nats.errors.Error, OSError):
            return False
        await client.close()
        return True

    return asyncio.run(attempt())


def test_ctrl_c_stops_every_child_and_a_second_run_keeps_the_data(
    stack: Stack, tmp_path: Path
) -> None:
    created = stack.justice(
        *("report", "create", "--case", "AN.12.L3.000002/26", "--narrative", "Bewaard."),
        *("--place", "Brugge", "--offence", "43A=Art. 461 Sw."),
    )
    assert created.returncode == 0, created.stdout + created.stderr
    name = json.loads(created.stdout)["name"]
    original = tmp_path / "kept.bin"
    original.write_bytes(os.urandom(100_000))
    uploaded = stack.justice("evidence", "upload", str(original), "--case", "AN.12.L3.000002/26")
    match = re.search(r"stored (evidence/\S+)", uploaded.stdout)
    assert match, uploaded.stdout + uploaded.stderr

    children = stack.interrupt()
    assert len(children) >= 2  # nats-server and weed
    assert all(_gone(pid) for pid in children)

    stack.start()  # the same folder, the same command, the same default state dir
    kept = stack.justice("--purpose", PURPOSE, "report", "get", name)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert '"state": "DRAFT"' in kept.stdout
    copy = tmp_path / "copy.bin"
    downloaded = stack.justice(
        "--purpose", PURPOSE, "evidence", "download", match.group(1), "--out", str(copy)
    )
    assert downloaded.returncode == 0, downloaded.stdout + downloaded.stderr
    assert copy.read_bytes() == original.read_bytes()
