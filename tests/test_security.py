"""Security: no shell or subprocess for networking, names stay inside /run/netns, netns_kit
refuses to remove what it did not create, state is root-only, networks are isolated."""

from __future__ import annotations

import ast
import os
import pathlib
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from traffic import connect, serve

import netns_kit as nk
from netns_kit import Bridge, Namespace, OwnershipError, ValidationError, VethPair, _state
from netns_kit.network import Network

PKG = pathlib.Path(nk.__file__).parent

# Where the library may start processes: the documented command runners (a user's argv, no shell)
# and the container engine's CLI (to resolve a container's PID). Nothing here configures networking.
ALLOWED_PROCESS_SITES = {
    ("namespace.py", "Namespace.run"),
    ("namespace.py", "Namespace.popen"),
    ("harness.py", "Process.start"),
    ("engines.py", "Engine.container_pid"),
    ("_procs.py", "start_service"),  # the networks' name service process (docs/dns.md)
}
PROCESS_CALLS = {
    ("subprocess", name) for name in ("run", "Popen", "call", "check_call", "check_output", "getoutput",
                                      "getstatusoutput")
} | {("os", name) for name in ("system", "popen", "execv", "execve", "execvp", "execvpe", "execl", "execlp",
                                "execle", "execlpe", "spawnv", "spawnve", "spawnvp", "spawnl", "posix_spawn",
                                "posix_spawnp", "fork", "forkpty")} | {("pty", "spawn")}
NETWORK_TOOLS = {"ip", "nft", "iptables", "ip6tables", "tc", "bridge", "brctl", "sysctl", "sh", "bash"}


def _visit(node: ast.AST, module: str, stack: list[str]) -> Iterator[tuple[str, str, ast.Call]]:
    named = isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    if named:
        stack.append(node.name)  # type: ignore[attr-defined]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
            isinstance(node.func.value, ast.Name) and (node.func.value.id, node.func.attr) in PROCESS_CALLS:
        yield module, ".".join(stack), node
    for child in ast.iter_child_nodes(node):
        yield from _visit(child, module, stack)
    if named:
        stack.pop()


def _process_calls() -> Iterator[tuple[str, str, ast.Call]]:
    """Every call that starts a process, as (module, enclosing class.function, call node)."""
    for path in sorted(PKG.glob("*.py")):
        yield from _visit(ast.parse(path.read_text(), filename=str(path)), path.name, [])


def test_no_subprocess_outside_the_documented_runners() -> None:
    sites = {(mod, where) for mod, where, _ in _process_calls()}
    assert sites, "the scan found nothing: it is broken"
    assert sites <= ALLOWED_PROCESS_SITES, sites - ALLOWED_PROCESS_SITES


def test_no_shell_and_no_network_tool_command_lines() -> None:
    for mod, where, call in _process_calls():
        for kw in call.keywords:
            if kw.arg == "shell":
                assert isinstance(kw.value, ast.Constant) and kw.value.value is False, (mod, where)
        argv = call.args[0] if call.args else None
        if isinstance(argv, ast.List | ast.Tuple) and argv.elts and isinstance(argv.elts[0], ast.Constant):
            assert argv.elts[0].value not in NETWORK_TOOLS, (mod, where, argv.elts[0].value)
        # the runners take the caller's argv as given; the engine CLI is the one fixed program
        if mod != "engines.py":
            assert not (isinstance(argv, ast.Constant) and isinstance(argv.value, str)), (mod, where)


def test_runner_refuses_shell_strings(host: Namespace) -> None:
    with pytest.raises(ValidationError):
        host.run("ip link; reboot")
    with pytest.raises(ValidationError):
        host.popen("sh -c 'id'")


@pytest.mark.parametrize("name", ["../x", "../../etc/evil", "/abs", "a/../../b", "..", ".", "x\0y", "-n",
                                  "a" * 256, "ns;rm -rf /", "$(id)", "`id`", "ns name", "ns\nname"])
def test_namespace_names_cannot_escape_run_netns(host: Namespace, name: str) -> None:
    before = set(os.listdir("/run")) | set(os.listdir("/etc"))
    with pytest.raises(ValidationError):
        Namespace(name).create()
    with pytest.raises(ValidationError):
        Namespace.open(name)
    assert set(os.listdir("/run")) | set(os.listdir("/etc")) == before


def test_refuses_to_remove_what_it_did_not_create(host: Namespace) -> None:
    subprocess.run(["ip", "link", "add", "br-foreign", "type", "bridge"], check=True)
    subprocess.run(["ip", "netns", "add", "ns-foreign"], check=True)
    subprocess.run(["ip", "link", "add", "vf0", "type", "veth", "peer", "name", "vf1"], check=True)
    try:
        br = Bridge.open("br-foreign")
        with pytest.raises(OwnershipError, match="br-foreign"):
            br.remove()
        ns = Namespace.open("ns-foreign")
        with pytest.raises(OwnershipError, match="ns-foreign"):
            ns.remove()
        for pid_ns in (Namespace.current(), Namespace.from_pid(os.getpid())):
            with pytest.raises(OwnershipError):
                pid_ns.remove()
        with pytest.raises(nk.AlreadyExistsError):  # a name taken by someone else is not reused
            Bridge("br-foreign").create()
        with pytest.raises(nk.AlreadyExistsError):
            Namespace("ns-foreign").create()
        assert host.has_link("br-foreign") and host.has_link("vf0")
        assert os.path.exists("/run/netns/ns-foreign")
        # explicit adoption hands ownership over
        Bridge.open("br-foreign").adopt().remove()
        VethPair("vf0", "vf1").adopt().remove()
        Namespace.open("ns-foreign").adopt().remove()
        assert not host.has_link("br-foreign") and not host.has_link("vf0")
        assert not os.path.exists("/run/netns/ns-foreign")
    finally:
        subprocess.run(["ip", "link", "del", "br-foreign"], capture_output=True)
        subprocess.run(["ip", "link", "del", "vf0"], capture_output=True)
        subprocess.run(["ip", "netns", "del", "ns-foreign"], capture_output=True)


def test_foreign_nft_tables_are_left_alone(host: Namespace) -> None:
    foreign = "table inet someone_else {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n" \
              "\t\ttcp dport 22 accept\n\t}\n}\n"
    host.run(["nft", "-f", "-"], input=foreign, check=True)
    mine_before = host.run(["nft", "list", "table", "inet", "someone_else"], check=True).stdout
    with Network("sec", subnet="10.74.0.0/24") as net, Namespace("sec-a") as a:
        net.connect(a, publish=["8090:80"])
    assert host.run(["nft", "list", "table", "inet", "someone_else"], check=True).stdout == mine_before
    # a table of netns_kit's name that netns_kit did not make: refused, not taken over
    host.run(["nft", "add", "table", "inet", "netns_kit"], check=True)
    with pytest.raises(OwnershipError), Network("sec2", subnet="10.75.0.0/24"):
        pass
    assert "table inet netns_kit" in host.run(["nft", "list", "tables"], check=True).stdout
    host.run(["nft", "delete", "table", "inet", "netns_kit"], check=True)
    host.run(["nft", "delete", "table", "inet", "someone_else"], check=True)


def test_state_dir_is_root_only_and_not_a_symlink(host: Namespace) -> None:
    with Namespace("sec-st"):
        for p in (_state.STATE_DIR, _state.journal_dir(), _state.locks_dir()):
            st = os.lstat(p)
            assert stat.S_ISDIR(st.st_mode) and st.st_mode & 0o077 == 0 and st.st_uid == 0, p
        for d in (_state.journal_dir(), _state.locks_dir()):
            for f in os.listdir(d):
                st = os.lstat(os.path.join(d, f))
                assert stat.S_ISREG(st.st_mode) and st.st_mode & 0o077 == 0, f


def test_networks_are_isolated_for_tcp_udp_and_icmp(host: Namespace) -> None:
    with Network("iso-a", subnet="10.76.0.0/24") as na, Network("iso-b", subnet="10.77.0.0/24") as nb, \
            Namespace("iso-a1") as a1, Namespace("iso-a2") as a2, Namespace("iso-b1") as b1:
        na.connect(a1)
        ca2 = na.connect(a2)
        cb1 = nb.connect(b1)
        ip_a2, ip_b1 = str(ca2.address.ip), str(cb1.address.ip)
        with serve(a2, port=7001), serve(a2, port=7002, proto="udp"), \
                serve(b1, port=7001), serve(b1, port=7002, proto="udp"):
            # same network: everything passes (the positive control)
            assert connect(a1, ip_a2, 7001) is not None
            assert connect(a1, ip_a2, 7002, proto="udp") is not None
            assert a1.run(["ping", "-c", "1", "-W", "1", ip_a2]).returncode == 0
            # other network: nothing passes, either way
            for src, dst in ((a1, ip_b1), (b1, ip_a2)):
                assert connect(src, dst, 7001, timeout=1) is None
                assert connect(src, dst, 7002, proto="udp", timeout=1) is None
                assert src.run(["ping", "-c", "1", "-W", "1", dst]).returncode != 0


def test_internal_network_has_no_way_out(host: Namespace) -> None:
    with Network("iso-int", subnet="10.78.0.0/24", internal=True) as net, Namespace("iso-i1") as i1, \
            Namespace("iso-out") as out:
        net.connect(i1)
        # "outside": a namespace routed from the host
        VethPair("vout", "eth0", peer_namespace=out).create()
        host.add_address("vout", "198.51.100.1/24")
        out.add_address("eth0", "198.51.100.2/24")
        assert not any(r.is_default for r in i1.routes(4))
        with serve(out, port=7003):
            assert connect(i1, "198.51.100.2", 7003, timeout=1) is None
            assert i1.run(["ping", "-c", "1", "-W", "1", "198.51.100.2"]).returncode != 0
            assert i1.run(["ping", "-c", "1", "-W", "1", "198.51.100.1"]).returncode != 0


_IMPORT_UNDER_AUDIT = textwrap.dedent("""
    import sys
    started = []
    def hook(event, args):
        if event in ("subprocess.Popen", "os.posix_spawn", "os.exec", "os.spawn", "os.fork", "os.forkpty",
                     "os.system", "pty.spawn"):
            started.append(f"{event} {args!r}")
    sys.addaudithook(hook)
    import netns_kit, netns_kit.ipam, netns_kit.views, netns_kit.testing, netns_kit.harness, netns_kit.chaos
    import netns_kit.pytest_plugin
    print(repr(started))
""")


@pytest.mark.pure
def test_import_starts_no_process() -> None:
    """`import netns_kit` used to run `ldconfig -p` (ctypes.util.find_library); libc is loaded by soname."""
    env = {**os.environ, "PYTHONPATH": str(PKG.parent)}
    out = subprocess.run([sys.executable, "-c", _IMPORT_UNDER_AUDIT], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _plant(link: str, target: pathlib.Path) -> None:
    os.makedirs(os.path.dirname(link), mode=0o700, exist_ok=True)
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(target, link)


def test_state_files_do_not_follow_planted_symlinks(host: Namespace, tmp_path: pathlib.Path) -> None:
    """Lock files, the JSON state store and the journal are opened with O_NOFOLLOW: a link planted at
    their path is refused with a StateError naming it, and the link's target stays untouched."""
    target = tmp_path / "victim"
    target.write_text("untouched\n")
    # a lock file
    lock_path = os.path.join(_state.locks_dir(), "planted.lock")
    _plant(lock_path, target)
    with pytest.raises(nk.StateError, match="symbolic link"), _state.lock("planted"):
        pass
    os.unlink(lock_path)
    # a JSON state file: read refused, write replaces the link (rename) and never writes the target
    json_path = os.path.join(_state.STATE_DIR, "networks", "planted", "x.json")
    _plant(json_path, target)
    with pytest.raises(nk.StateError, match="symbolic link"):
        _state.read_json(json_path)
    tmp = f"{json_path}.{os.getpid()}.{__import__('threading').get_ident()}.tmp"
    _plant(tmp, target)  # a link at the temporary name as well
    _state.write_json(json_path, {"a": 1})
    assert not os.path.islink(json_path) and _state.read_json(json_path) == {"a": 1}
    _state.delete_json(json_path)
    assert target.read_text() == "untouched\n"
    # a journal file: checked with a fresh process (its journal does not exist yet)
    code = ("import os, sys, netns_kit as nk; from netns_kit import _state\n"
            "p = os.path.join(_state.journal_dir(), _state.owner_id() + '.jsonl')\n"
            "os.makedirs(os.path.dirname(p), exist_ok=True); os.symlink(sys.argv[1], p)\n"
            "try:\n    nk.Namespace('sec-jl').create().remove()\n"
            "except nk.StateError as e:\n    print('refused', e)\nfinally:\n    os.unlink(p)\n")
    out = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(PKG.parent)})
    assert out.stdout.startswith("refused") and "symbolic link" in out.stdout, out.stdout + out.stderr
    assert target.read_text() == "untouched\n"
    assert not os.path.exists("/run/netns/sec-jl")
