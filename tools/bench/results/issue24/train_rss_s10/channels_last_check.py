import torch
import torch.nn.functional as F

torch.manual_seed(0)
for b, c, t, p, kt in [
    (64, 8, 80, 9, 8),
    (64, 8, 73, 20, 8),
    (64, 8, 66, 33, 8),
    (20, 8, 66, 33, 8),
    (1, 8, 2062, 20, 8),
    (5, 16, 30, 7, 5),
    (3, 4, 20, 5, 3),
    (2, 6, 20, 5, 3),
]:
    x = torch.randn(b, c, t, p)
    w = torch.randn(c, 1, kt, 1, requires_grad=True)
    bias = torch.randn(c, requires_grad=True)
    g = torch.randn(b, c, t - kt + 1, p)
    outs = []
    for fmt in [torch.contiguous_format, torch.channels_last]:
        xi = x.detach().clone(memory_format=fmt).requires_grad_(True)
        wi = w.detach().clone().requires_grad_(True)
        bi = bias.detach().clone().requires_grad_(True)
        z = F.conv2d(xi, wi, bi, groups=c)
        z.backward(g)
        outs.append(
            (
                z.detach().contiguous(),
                xi.grad.contiguous(),
                wi.grad,
                bi.grad,
                z.is_contiguous(memory_format=torch.channels_last),
                xi.grad.is_contiguous(memory_format=torch.channels_last),
            )
        )
    a, bb = outs
    print(
        (b, c, t, p, kt),
        [torch.equal(u, v) for u, v in zip(a[:4], bb[:4], strict=False)],
        "out CL",
        bb[4],
        "gradin CL",
        bb[5],
        [float((u - v).abs().max()) for u, v in zip(a[:4], bb[:4], strict=False)],
    )
