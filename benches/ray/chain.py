#!/usr/bin/env python3
"""Ray Serve baseline for the pipeline benchmark: the 2-step sum-diff chain over OIP JSON.

Serves, on a local single-node Ray, the same pipeline flowc runs over Kafka:

    step1 = sum-diff(INPUT0, INPUT1)        -> OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1
    step2 = sum-diff(step1.OUTPUT0, step1.OUTPUT1)
    chain = step2's OUTPUT0, OUTPUT1         (all INT32, shape [1, 16] in the benchmark)

as three Ray Serve deployments: two model deployments ("step1", "step2", the same sum-diff
class) that an ingress deployment ("ingress") calls one after the other through
DeploymentHandles, the usual Ray Serve model composition. The ingress speaks the Open
Inference Protocol (KServe V2) JSON REST API:

    POST /v2/pipelines/chain/infer   (also /v2/models/chain/infer)   both steps
    POST /v2/pipelines/one/infer     (also /v2/models/one/infer)     step1 only
    GET  /v2/health/ready, /v2/health/live

Usage (with the venv of scripts/setup-ray.sh):

    python chain.py --port 8500 --config best|proxy|defaults

It prints exactly one line on stdout, `READY http://127.0.0.1:<port>/v2/pipelines/chain/infer`,
once a request through that URL (and one to the `one` pipeline) answered correctly; everything
else (Ray's own logs included) goes to stderr, which the caller must drain or redirect. It then
serves until SIGTERM or SIGINT, shuts Serve and Ray down (no raylet or GCS left behind) and
exits 0. See README.md beside this file for what each config means.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time

CONFIGS = ("best", "proxy", "defaults")
PIPELINES = {"chain": 2, "one": 1}  # pipeline name -> number of sum-diff steps
INPUT_NAMES = ("INPUT0", "INPUT1")
OUTPUT_NAMES = ("OUTPUT0", "OUTPUT1")
READY_TIMEOUT_S = 180.0


class Stop(Exception):
    """Raised by the signal handler while starting up, to abandon the start-up."""


def log(msg):
    print(f"chain.py: {msg}", file=sys.stderr, flush=True)


def become_subreaper():
    """Makes this process the reaper of its orphaned descendants (Linux), so that Ray
    processes whose parent died first (the agents, when a signal cuts ray.init short) become
    our children, which end_leftovers can find."""
    try:
        import ctypes

        pr_set_child_subreaper = 36
        return ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children():
    me, kids = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == me:  # fields: state, ppid, ...
                kids.append(int(entry))
    return kids


def end_leftovers(grace_s=5.0):
    """After ray.shutdown(): ends and reaps whatever child processes are left (none, when
    Ray shut down normally), first with SIGTERM, then SIGKILL."""
    deadline, sig, ended = time.monotonic() + grace_s, signal.SIGTERM, set()
    while True:
        while True:  # reap what already exited
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
        kids = children()
        if not kids:
            break
        if time.monotonic() > deadline:
            sig = signal.SIGKILL
        for pid in kids:
            if (pid, sig) not in ended:
                ended.add((pid, sig))
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        time.sleep(0.1)
    if ended:
        log(f"ended {len({pid for pid, _ in ended})} leftover Ray process(es)")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def configure_env(config, port):
    """Sets the Ray Serve feature flags of `config`.

    Ray Serve reads them once, when its modules are imported, in this process and in the
    controller, proxy and replica processes (which inherit this environment through the raylet
    that ray.init starts), so this runs before `ray` is imported.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if config in ("best", "proxy"):
        # gRPC between replicas instead of Ray actor calls, user code and router on the
        # replica's event loop, no per-request logging to stderr, GC frozen after start-up;
        # in Ray 2.60 it also turns direct ingress on unless told otherwise (below).
        os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
    if config == "best":
        # Direct ingress: the ingress replica runs its own uvicorn HTTP server on a port that
        # the controller allocates from [MIN, MAX) (MAX excluded); a range of one port makes it
        # the port the benchmark asked for. No load balancer has to take the replica out of rotation here,
        # so shutting down need not hold it open for the default 30 s drain period.
        os.environ["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "1"
        os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] = str(port)
        os.environ["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] = str(port + 1)
        os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "0"
    elif config == "proxy":
        os.environ["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "0"
    else:
        for name in ("RAY_SERVE_THROUGHPUT_OPTIMIZED", "RAY_SERVE_ENABLE_DIRECT_INGRESS"):
            os.environ.pop(name, None)


def build_app(config):
    import numpy as np
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import Response

    if config == "defaults":
        # Serve's defaults (max_ongoing_requests=5, ...) except the CPU reservation: a replica
        # reserves 1 CPU by default, and 3 replicas do not fit in ray.init(num_cpus=2).
        options = {"ray_actor_options": {"num_cpus": 0.5}}
    else:
        options = {"max_ongoing_requests": 100, "ray_actor_options": {"num_cpus": 0.5}}

    @serve.deployment(**options)
    class SumDiff:
        """The sum-diff model: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (INT32)."""

        async def __call__(self, in0, in1):
            # int32 arrays: wraps around on overflow, as an INT32 model does.
            return in0 + in1, in0 - in1

    class BadRequest(Exception):
        pass

    def json_response(body, status=200):
        return Response(
            json.dumps(body, separators=(",", ":")).encode(),
            status_code=status,
            media_type="application/json",
        )

    def parse_inputs(body):
        try:
            req = json.loads(body)
        except ValueError as e:
            raise BadRequest(f"invalid JSON: {e}")
        if not isinstance(req, dict) or not isinstance(req.get("inputs"), list):
            raise BadRequest("the request has no `inputs` list")
        by_name = {t.get("name"): t for t in req["inputs"] if isinstance(t, dict)}
        tensors = []
        for name in INPUT_NAMES:
            t = by_name.get(name)
            if t is None:
                raise BadRequest(f"missing input {name}")
            if t.get("datatype") != "INT32":
                raise BadRequest(f"input {name} has datatype {t.get('datatype')}, want INT32")
            shape = t.get("shape")
            if not isinstance(shape, list) or not all(
                isinstance(d, int) and d >= 0 for d in shape
            ):
                raise BadRequest(f"input {name} has an invalid shape {shape!r}")
            try:
                arr = np.asarray(t.get("data"), dtype=np.int32).reshape(shape)
            except (TypeError, ValueError, OverflowError) as e:
                raise BadRequest(f"input {name}: data does not fit INT32 {shape}: {e}")
            tensors.append(arr)
        if tensors[0].shape != tensors[1].shape:
            raise BadRequest(
                f"INPUT0 has shape {list(tensors[0].shape)} but INPUT1 has {list(tensors[1].shape)}"
            )
        return req.get("id"), tensors[0], tensors[1]

    @serve.deployment(**options)
    class Ingress:
        """OIP JSON front: parses the request, calls the steps through their handles."""

        def __init__(self, step1, step2):
            self.steps = (step1, step2)

        async def __call__(self, request: Request):
            parts = request.url.path.strip("/").split("/")
            if request.method == "GET" and parts in (["v2", "health", "ready"], ["v2", "health", "live"]):
                return json_response({"ready" if parts[2] == "ready" else "live": True})
            if (
                len(parts) != 4
                or parts[0] != "v2"
                or parts[1] not in ("pipelines", "models")
                or parts[3] != "infer"
            ):
                return json_response({"error": f"no route {request.url.path}"}, 404)
            name = parts[2]
            if name not in PIPELINES:
                return json_response({"error": f"unknown pipeline {name}"}, 404)
            if request.method != "POST":
                return json_response({"error": "infer takes POST"}, 405)
            try:
                req_id, out0, out1 = parse_inputs(await request.body())
            except BadRequest as e:
                return json_response({"error": str(e)}, 400)
            for step in self.steps[: PIPELINES[name]]:
                # Step n+1 gets step n's OUTPUT0 as INPUT0 and OUTPUT1 as INPUT1.
                out0, out1 = await step.remote(out0, out1)
            resp = {"model_name": name}
            if req_id is not None:
                resp["id"] = req_id
            resp["outputs"] = [
                {"name": n, "datatype": "INT32", "shape": list(a.shape), "data": a.ravel().tolist()}
                for n, a in zip(OUTPUT_NAMES, (out0, out1))
            ]
            return json_response(resp)

    return Ingress.options(name="ingress").bind(
        SumDiff.options(name="step1").bind(), SumDiff.options(name="step2").bind()
    )


def check(port, pipeline):
    """Sends the reference request; returns None if the answer is right, else why not."""
    seq = list(range(1, 17))
    body = json.dumps(
        {
            "inputs": [
                {"name": n, "datatype": "INT32", "shape": [1, 16], "data": seq}
                for n in INPUT_NAMES
            ]
        }
    )
    doubled = [2 * x for x in seq]
    want = {"OUTPUT0": doubled, "OUTPUT1": doubled if pipeline == "chain" else [0] * 16}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST",
            f"/v2/pipelines/{pipeline}/infer",
            body=body,
            headers={"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as e:
        return f"{type(e).__name__}: {e}"
    finally:
        conn.close()
    if resp.status != 200:
        return f"HTTP {resp.status}: {text[:200]}"
    try:
        got = json.loads(text)
        outs = {o["name"]: o for o in got["outputs"]}
        ok = got.get("model_name") == pipeline and all(
            outs[n]["datatype"] == "INT32"
            and outs[n]["shape"] == [1, 16]
            and outs[n]["data"] == want[n]
            for n in OUTPUT_NAMES
        )
    except (ValueError, KeyError, TypeError) as e:
        return f"malformed answer ({e}): {text[:200]}"
    return None if ok else f"wrong answer: {text[:300]}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True, help="port the benchmark sends to")
    ap.add_argument("--config", choices=CONFIGS, required=True)
    args = ap.parse_args()

    # Exactly one line on stdout: keep a private copy of it for READY and point fd 1 at
    # stderr, so that nothing else (Ray forwards its workers' stdout to the driver's) lands
    # there. os.dup makes the copy non-inheritable, so Ray's processes do not hold it open.
    sys.stdout.flush()
    ready_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    stop = threading.Event()
    started = False

    def on_signal(signum, _frame):
        stop.set()
        if not started:
            raise Stop(signal.Signals(signum).name)

    def install_handlers():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    # Fail fast, before starting Ray, if the benchmark's port is taken (Ray would otherwise
    # retry the ingress replica, or its proxy, for a while before giving up).
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # As uvicorn does: only a listener makes the port busy, not TIME_WAIT leftovers.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", args.port))
    except OSError as e:
        log(f"port {args.port} is not free: {e}")
        return 1

    install_handlers()
    become_subreaper()
    configure_env(args.config, args.port)

    ray = serve = None
    status = 1
    interrupted = False
    try:
        t0 = time.monotonic()
        import ray
        from ray import serve

        ray.init(num_cpus=2, include_dashboard=False)
        # ray.init installs its own SIGTERM handler in this process (which logs and dies
        # without shutting Ray down, leaving Ray's agents behind): put ours back.
        install_handlers()
        # In `best` the benchmark's port belongs to the ingress replica, and Serve's HTTP proxy
        # (which still runs in direct-ingress mode) gets a free port of its own.
        proxy_port = free_port() if args.config == "best" else args.port
        serve.start(http_options={"host": "127.0.0.1", "port": proxy_port})
        serve.run(build_app(args.config), name="chain", route_prefix="/")
        log(f"config {args.config}: deployed in {time.monotonic() - t0:.1f} s")
        if args.config == "best":
            log(f"direct ingress on :{args.port}; Serve's proxy on :{proxy_port} (unused)")

        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            problems = [p for p in (check(args.port, n) for n in PIPELINES) if p]
            if not problems:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"not answering right on :{args.port}: {problems[0]}")
            time.sleep(0.2)

        started = True
        if stop.is_set():  # a signal between the last check and `started`
            raise Stop("signal")
        log(f"ready in {time.monotonic() - t0:.1f} s")
        ready_out.write(f"READY http://127.0.0.1:{args.port}/v2/pipelines/chain/infer\n")
        ready_out.flush()
        while not stop.wait(3600):
            pass
        log("stopping")
        status = 0
    except (Stop, SystemExit, KeyboardInterrupt) as e:
        # Stop from our handler; SystemExit from the one Ray installs while ray.init runs.
        log(f"stopped by {type(e).__name__} {e} while starting")
        status = 0
        interrupted = True
    except Exception as e:  # noqa: BLE001 - report, then shut Ray down
        log(f"failed: {type(e).__name__}: {e}")
        status = 1
    finally:
        started = True  # from here on a second signal must not interrupt the shutdown
        t1 = time.monotonic()
        if ray is not None:
            try:
                if serve is not None and ray.is_initialized():
                    serve.shutdown()
            except Exception as e:  # noqa: BLE001
                log(f"serve.shutdown: {type(e).__name__}: {e}")
            ray.shutdown()
        end_leftovers()
        log(f"shut down in {time.monotonic() - t1:.1f} s")
    if interrupted:
        # A signal that cut ray.init short can leave Ray's core worker half set up, and the
        # interpreter's teardown then crashes on it (SIGABRT/SIGSEGV): Ray is shut down and
        # its processes ended by now, so leave without that teardown.
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
