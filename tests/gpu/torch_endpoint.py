"""PyTorch with the endpoint on (run with VRAMGUARD_LISTEN=unix:/tmp/vramguard-%p.sock):
/metrics scraped during the run matches torch.cuda.memory_reserved(), and
/vram attributes the untagged segments to the module that calls cudaMalloc
(libc10_cuda.so). Prints PASS/FAIL and ROW lines; exit 0 when all pass."""
import json
import os
import re
import socket
import sys

import torch

MiB = 1 << 20
fails = 0


def check(name, cond, detail=""):
    global fails
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else ": " + detail), flush=True)
    fails += 0 if cond else 1


def get(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(f"/tmp/vramguard-{os.getpid()}.sock")
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(errors="replace"), body.decode(errors="replace")


x = torch.empty(384 * MiB, dtype=torch.uint8, device="cuda")   # untagged
y = torch.empty(64 * MiB, dtype=torch.float32, device="cuda")
torch.cuda.synchronize()
reserved = torch.cuda.memory_reserved()
head, metrics = get("/metrics")
check("/metrics answers 200", head.startswith("HTTP/1.1 200") or head.startswith("HTTP/1.0 200"), head[:80])
m = re.search(r'^vramguard_charged_bytes\{device="0"[^}]*\} (\d+)', metrics, re.M)
charged = int(m.group(1)) if m else -1
check("vramguard_charged_bytes equals torch.cuda.memory_reserved()", charged == reserved,
      f"metrics {charged}, torch {reserved}")
print(f"ROW torch /metrics|torch.cuda.memory_reserved()={reserved}|vramguard_charged_bytes={charged}|diff={charged - reserved}")
head, body = get("/vram")
report = json.loads(body)
modules = report["devices"][0].get("untagged_by_module", [])
top = modules[0]["module"] if modules else "(none)"
check("untagged segments attributed to libc10_cuda", top.startswith("libc10_cuda"), json.dumps(modules)[:300])
print(f"ROW torch untagged by module|{', '.join(m['module'] + '=' + str(m['live_bytes']) for m in modules[:3])}")
sys.exit(1 if fails else 0)
