"""Workloads for the allowance rows of run_gpu_tests.sh (issue 8): argv
conv | pin_big | jax. Prints PASS/FAIL lines; exit 0 when the workload ran.

conv     a PyTorch Conv2d forward and backward (cuDNN creates its handle:
         libcudnn_graph asks cuMemHostAlloc for 4 bytes)
pin_big  torch.empty(1 GiB, pin_memory=True): must be refused under a
         narrow allowance (exit 0 only when it was refused)
jax      a small JAX computation (XLA stages transfers in pinned buffers)
"""
import sys

which = sys.argv[1]

if which == "conv":
    import torch
    x = torch.randn(8, 3, 64, 64, device="cuda", requires_grad=True)
    conv = torch.nn.Conv2d(3, 16, 3, padding=1).cuda()
    y = conv(x).relu().sum()
    y.backward()
    torch.cuda.synchronize()
    print("PASS conv forward and backward: %.3f" % float(y), flush=True)
elif which == "pin_big":
    import torch
    try:
        t = torch.empty(1 << 28, dtype=torch.float32, pin_memory=True)  # 1 GiB
        print("FAIL pin_memory of 1 GiB was let through (%d bytes)" % (t.numel() * 4), flush=True)
        sys.exit(1)
    except RuntimeError as exc:
        print("PASS pin_memory of 1 GiB refused: %s" % str(exc).splitlines()[0], flush=True)
elif which == "jax":
    import jax
    import jax.numpy as jnp
    a = jnp.arange(1 << 20, dtype=jnp.float32)
    b = (a * 2.0).sum()
    host = jax.device_get(a[:16])
    print("PASS jax computed %.1f, copied %d values back" % (float(b), len(host)), flush=True)
else:
    sys.exit("argv: conv | pin_big | jax")
