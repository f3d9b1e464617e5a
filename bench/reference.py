#!/usr/bin/env python3
"""PyTorch-eager reference for `exp bench --vs-pytorch`.

The identical model and training step as the Go harness (model/*.go,
train/*.go), written the ordinary PyTorch way: post-LN ALBERT blocks with a
factorized embedding (projection E->H when E != H), cross-layer sharing "all"
or "none", the tied MLM decoder computed only at the masked positions, the
pooler and SOP head, the official MLM loss sum(w*nll)/(sum(w)+1e-5) plus the
sentence cross-entropy, global-norm clipping at 1.0 and LAMB exactly as
train/lamb.go (no bias correction, decoupled weight decay 0.01 and the trust
ratio on everything but LayerNorm and bias). Dropout 0.1 as configured.

PyTorch's best eager form by default: LAMB over all the parameters at once
with torch._foreach_* multi-tensor ops (--optimizer-impl foreach; "loop",
one parameter at a time, is the same arithmetic in the form used before),
optionally the model under torch.compile (--compile, PyTorch 2.x only).
--precision as train.precision: fp32; tf32 (CUDA TF32 matmuls, refused on
the CPU as the Go trainer refuses it); bf16 (torch.autocast to bfloat16
around the forward pass and the loss, LayerNorm, softmax and the logits in
fp32 as model/*.go keeps them, fp32 master weights and LAMB state).
--self-check runs the foreach LAMB against the loop LAMB instead of timing.

Run with Debian's python3-torch (1.13.1: the same libtorch and OpenBLAS as
the Go side) and the same thread count. It prints one JSON line with the
same keys as bench.Result.
"""
import argparse
import contextlib
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def trunc_normal(*shape, std=0.02):
    t = torch.empty(*shape)
    nn.init.trunc_normal_(t, std=std, a=-2 * std, b=2 * std)
    return nn.Parameter(t)


class Dense(nn.Module):
    def __init__(self, out_f, in_f):
        super().__init__()
        self.weight = trunc_normal(out_f, in_f)
        self.bias = nn.Parameter(torch.zeros(out_f))

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class LayerNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))
        self.n, self.eps = n, eps

    def forward(self, x):
        # fp32 under bf16 autocast too, as model/linear.go's layerNorm (its
        # input may be a dense layer's bf16 output); a no-op in fp32.
        return F.layer_norm(x.float(), (self.n,), self.weight, self.bias, self.eps)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        H = c["hidden_size"]
        self.nh = c["num_heads"]
        self.query, self.key, self.value, self.output = Dense(H, H), Dense(H, H), Dense(H, H), Dense(H, H)
        self.layer_norm = LayerNorm(H, c["layer_norm_eps"])
        self.p_att, self.p_hid = c["attention_dropout"], c["hidden_dropout"]
        self.scale = 1 / math.sqrt(H // self.nh)

    def forward(self, x, mask_add):
        B, S, H = x.shape
        d = H // self.nh

        def heads(t):
            return t.view(B, S, self.nh, d).transpose(1, 2)

        q = heads(self.query(x)) * self.scale
        k = heads(self.key(x))
        v = heads(self.value(x))
        probs = torch.softmax(q @ k.transpose(-1, -2) + mask_add, dim=-1)
        probs = F.dropout(probs, self.p_att, self.training)
        ctx = (probs @ v).transpose(1, 2).reshape(B, S, H)
        out = F.dropout(self.output(ctx), self.p_hid, self.training)
        return self.layer_norm(out + x)


class FFN(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, I = c["hidden_size"], c["intermediate_size"]
        self.intermediate, self.output = Dense(I, H), Dense(H, I)
        self.layer_norm = LayerNorm(H, c["layer_norm_eps"])
        self.p = c["hidden_dropout"]

    def forward(self, x):
        h = F.gelu(self.intermediate(x), approximate="tanh")
        h = F.dropout(self.output(h), self.p, self.training)
        return self.layer_norm(h + x)


class Albert(nn.Module):
    def __init__(self, c):
        super().__init__()
        V, E, H = c["vocab_size"], c["embedding_size"], c["hidden_size"]
        self.c = c
        self.word = trunc_normal(V, E)
        self.position = trunc_normal(c["max_positions"], E)
        self.token_type = trunc_normal(c["type_vocab_size"], E)
        self.emb_layer_norm = LayerNorm(E, c["layer_norm_eps"])
        self.proj = Dense(H, E) if E != H else None
        L = c["num_layers"]
        if c["sharing"] == "all":
            att, ffn = Attention(c), FFN(c)
            self.atts = nn.ModuleList([att])
            self.ffns = nn.ModuleList([ffn])
            self.blocks = [(att, ffn)] * L
        elif c["sharing"] == "none":
            self.atts = nn.ModuleList([Attention(c) for _ in range(L)])
            self.ffns = nn.ModuleList([FFN(c) for _ in range(L)])
            self.blocks = list(zip(self.atts, self.ffns))
        else:
            raise SystemExit("reference.py: sharing %r not implemented" % c["sharing"])
        self.pooler = Dense(H, H)
        self.mlm_dense = Dense(E, H)
        self.mlm_layer_norm = LayerNorm(E, c["layer_norm_eps"])
        self.mlm_bias = nn.Parameter(torch.zeros(V))
        self.sentence = Dense(2, H)

    def forward(self, ids, segments, mask, positions):
        B, S = ids.shape
        x = F.embedding(ids, self.word) + F.embedding(segments, self.token_type) + self.position[:S]
        x = F.dropout(self.emb_layer_norm(x), self.c["hidden_dropout"], self.training)
        if self.proj is not None:
            x = self.proj(x)
        mask_add = ((mask.float() - 1) * 10000).view(B, 1, 1, S)
        for att, ffn in self.blocks:
            x = ffn(att(x, mask_add))
        H = x.shape[-1]
        flat = (positions + torch.arange(B, device=ids.device).unsqueeze(1) * S).view(-1)
        h = x.reshape(B * S, H).index_select(0, flat)
        h = self.mlm_layer_norm(F.gelu(self.mlm_dense(h), approximate="tanh"))
        mlm_logits = F.linear(h, self.word, self.mlm_bias)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        # Logits leave in fp32 whatever the arithmetic inside, as model.Forward.
        return mlm_logits.float(), self.sentence(pooled).float()


def decays(model):
    """Official exclusion: no decay / trust ratio for LayerNorm and bias."""
    return [(p, "layer_norm" not in name and "bias" not in name) for name, p in model.named_parameters()]


class Lamb:
    """The LAMB state both forms share: (parameter, decayed) pairs, zeroed
    moments, the official hyperparameters."""

    def __init__(self, params, b1=0.9, b2=0.999, eps=1e-6, wd=0.01):
        self.params = params
        self.b1, self.b2, self.eps, self.wd = b1, b2, eps, wd
        self.m = [torch.zeros_like(p) for p, _ in params]
        self.v = [torch.zeros_like(p) for p, _ in params]


class LoopLamb(Lamb):
    """train/lamb.go: m, v without bias correction; u = m/(sqrt(v)+eps) + wd*w;
    r = |w|/|u| (1 if either is 0) on decayed tensors; w -= lr*r*u."""

    @torch.no_grad()
    def step(self, lr):
        for (w, decay), m, v in zip(self.params, self.m, self.v):
            g = w.grad
            if g is None:
                continue
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            u = m / (v.sqrt().add_(self.eps))
            if decay:
                u.add_(w, alpha=self.wd)
                wn, un = w.norm(), u.norm()
                ok = (wn > 0) & (un > 0)
                r = torch.where(ok, wn / torch.where(ok, un, torch.ones_like(un)), torch.ones_like(wn))
                u.mul_(r)
            w.sub_(u, alpha=lr)


class ForeachLamb(Lamb):
    """LoopLamb's arithmetic with torch._foreach_* multi-tensor ops over all
    the parameters at once (PyTorch's fused-optimizer eager form): the same
    element-wise operations in the same order, the trust ratios of the
    decayed tensors from one _foreach_norm each of w and u."""

    @torch.no_grad()
    def step(self, lr):
        live = [(w, decay, m, v) for (w, decay), m, v in zip(self.params, self.m, self.v) if w.grad is not None]
        if not live:
            return
        ws = [w for w, _, _, _ in live]
        gs = [w.grad for w in ws]
        ms = [m for _, _, m, _ in live]
        vs = [v for _, _, _, v in live]
        torch._foreach_mul_(ms, self.b1)
        torch._foreach_add_(ms, gs, alpha=1 - self.b1)
        torch._foreach_mul_(vs, self.b2)
        torch._foreach_addcmul_(vs, gs, gs, value=1 - self.b2)
        den = torch._foreach_sqrt(vs)
        torch._foreach_add_(den, self.eps)
        us = torch._foreach_div(ms, den)
        dw = [w for (w, decay, _, _) in live if decay]
        du = [u for u, (_, decay, _, _) in zip(us, live) if decay]
        if dw:
            torch._foreach_add_(du, dw, alpha=self.wd)
            wn = torch.stack(torch._foreach_norm(dw))
            un = torch.stack(torch._foreach_norm(du))
            ok = (wn > 0) & (un > 0)
            r = torch.where(ok, wn / torch.where(ok, un, torch.ones_like(un)), torch.ones_like(wn))
            # The ratios stay on the device (no host sync mid-step), one 0-d
            # tensor a parameter, as PyTorch's capturable optimizers keep theirs.
            torch._foreach_mul_(du, list(r.unbind()))
        torch._foreach_add_(ws, us, alpha=-lr)


OPTIMIZERS = {"foreach": ForeachLamb, "loop": LoopLamb}


def batches(spec, n, seed):
    g = torch.Generator().manual_seed(seed)
    B, S, P, V = spec["batch"], spec["seq"], spec["preds"], spec["model"]["vocab_size"]
    out = []
    for _ in range(n):
        ids = torch.randint(5, V, (B, S), generator=g)
        seg = (torch.arange(S) > S // 2).long().expand(B, S).contiguous()
        mask = torch.ones(B, S, dtype=torch.long)
        pos = torch.stack([torch.randperm(S - 1, generator=g)[:P].sort().values + 1 for _ in range(B)])
        mids = torch.randint(5, V, (B * P,), generator=g)
        w = torch.ones(B * P)
        labels = torch.randint(0, 2, (B,), generator=g)
        out.append((ids, seg, mask, pos, mids, w, labels))
    return out


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device, n=1024, dtype=torch.float32):
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    a @ b
    sync(device)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.5 or reps < 3:
        a @ b
        reps += 1
        if device.type == "cuda" and reps % 50 == 0:
            sync(device)
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - start) / 1e9


def set_tf32(on):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def self_check(spec, steps, device):
    """The foreach LAMB against the loop LAMB: (1) the optimizer alone, the
    same gradients fed to both for `steps` steps over the spec model's
    parameter shapes, some decayed, with a zero tensor (trust ratio 1);
    (2) `steps` training steps of the spec model from one initialisation and
    the same dropout seeds. Prints the max |difference| of the parameters
    (and moments) and exits 1 over a tolerance of 1e-5 relative."""
    torch.manual_seed(1)
    model = Albert(spec["model"]).to(device)
    shapes = [(tuple(p.shape), decay) for p, decay in decays(model)]
    out = {"self_check": "foreach vs loop LAMB", "torch": torch.__version__, "device": str(device), "steps": steps}

    def run_opt(kind):
        g = torch.Generator().manual_seed(7)
        params = [(torch.randn(*sh, generator=g).to(device).requires_grad_(), d) for sh, d in shapes]
        with torch.no_grad():
            params[-1][0].zero_()  # a zero tensor: its trust ratio must be 1, not nan
        opt = OPTIMIZERS[kind](params)
        for _ in range(steps):
            for p, _ in params:
                p.grad = torch.randn(p.shape, generator=g).to(device)
            opt.step(1e-2)
        return [p.detach() for p, _ in params] + opt.m + opt.v

    def diff(a, b):
        d = max((x - y).abs().max().item() for x, y in zip(a, b))
        scale = max(x.abs().max().item() for x in a)
        return d, scale

    d, sc = diff(run_opt("loop"), run_opt("foreach"))
    out.update(optimizer_max_abs_diff=d, optimizer_max_abs=sc)

    def run_train(kind):
        torch.manual_seed(1)
        m = Albert(spec["model"]).to(device)
        m.train()
        params = decays(m)
        opt = OPTIMIZERS[kind](params)
        data = [tuple(t.to(device) for t in b) for b in batches(spec, 2, 1)]
        losses = []
        for step in range(steps):
            torch.manual_seed(step + 1)
            ids, seg, mask, pos, mids, w, labels = data[step % len(data)]
            for p, _ in params:
                p.grad = None
            mlm_logits, sent_logits = m(ids, seg, mask, pos)
            loss = mlm_loss(mlm_logits, mids, w) + F.cross_entropy(sent_logits, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p, _ in params], 1.0)
            opt.step(1e-3)
            losses.append(loss.item())
        return [p.detach() for p, _ in params], losses

    (pl, ll), (pf, lf) = run_train("loop"), run_train("foreach")
    d2, sc2 = diff(pl, pf)
    out.update(train_max_abs_diff=d2, train_max_abs=sc2, train_losses_loop=ll, train_losses_foreach=lf)
    out["pass"] = d <= 1e-5 * sc and d2 <= 1e-5 * sc2
    print(json.dumps(out))
    if not out["pass"]:
        raise SystemExit("reference.py: the foreach LAMB differs from the loop LAMB beyond 1e-5 relative")


def mlm_loss(mlm_logits, mids, w):
    nll = -torch.log_softmax(mlm_logits, -1).gather(1, mids.unsqueeze(1)).squeeze(1)
    return (nll * w).sum() / (w.sum() + 1e-5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True, help="bench.Spec as JSON")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"],
                    help="fp32; tf32 (CUDA TF32 matmuls); bf16 (autocast forward and loss, fp32 weights)")
    ap.add_argument("--optimizer-impl", default="foreach", choices=sorted(OPTIMIZERS),
                    help="LAMB with torch._foreach_* over all parameters, or one parameter at a time")
    ap.add_argument("--compile", action="store_true", help="the model under torch.compile (PyTorch 2.x)")
    ap.add_argument("--self-check", action="store_true",
                    help="compare the foreach LAMB with the loop LAMB over --steps steps instead of timing")
    a = ap.parse_args()
    name = a.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("reference.py: --device %s but this torch sees no CUDA device" % a.device)
    device = torch.device(name)
    if a.precision == "tf32" and device.type != "cuda":
        raise SystemExit("reference.py: --precision tf32 is a CUDA matmul mode; on the CPU use fp32 (the same arithmetic)")
    if a.compile and not hasattr(torch, "compile"):
        raise SystemExit("reference.py: --compile needs torch.compile (PyTorch 2.x); this torch is %s" % torch.__version__)
    spec = json.loads(a.spec)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.self_check:
        self_check(spec, a.steps, device)
        return
    variant = a.optimizer_impl + ("+compile" if a.compile else "")
    res = {"impl": "pytorch", "config": spec["name"], "device": str(device), "precision": a.precision,
           "variant": variant, "threads": torch.get_num_threads(),
           "steps": a.steps, "tokens_per_step": spec["batch"] * spec["seq"]}
    if device.type == "cuda":
        set_tf32(False)
        if a.precision != "fp32":
            res["ceiling_fp32_gflops"] = matmul_gflops(device)
        set_tf32(a.precision == "tf32")  # held for the whole run, as the Go stepper holds it
    elif a.precision != "fp32":
        res["ceiling_fp32_gflops"] = matmul_gflops(device)
    ceiling_dtype = torch.bfloat16 if a.precision == "bf16" else torch.float32
    res["ceiling_gflops"] = matmul_gflops(device, dtype=ceiling_dtype)
    torch.manual_seed(1)
    model = Albert(spec["model"]).to(device)
    model.train()
    params = decays(model)
    opt = OPTIMIZERS[a.optimizer_impl](params)
    plist = [p for p, _ in params]
    forward = torch.compile(model) if a.compile else model
    if a.precision == "bf16":
        autocast = lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext
    data = [tuple(t.to(device) for t in b) for b in batches(spec, 4, 1)]
    times, loss_v = [], float("nan")
    total = a.warmup + a.steps
    for step in range(total):
        torch.manual_seed(step + 1)
        ids, seg, mask, pos, mids, w, labels = data[step % len(data)]
        start = time.perf_counter()
        for p in plist:
            p.grad = None
        with autocast():
            mlm_logits, sent_logits = forward(ids, seg, mask, pos)
            loss = mlm_loss(mlm_logits, mids, w) + F.cross_entropy(sent_logits, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plist, 1.0)
        opt.step(1e-4)
        # As the Go side: the loss is read back every 10 steps on the CPU and
        # every step on a GPU, so a step's queued work is inside its own time.
        if device.type == "cuda" or step % 10 == 9 or step == total - 1:
            loss_v = loss.item()
        if step >= a.warmup:
            times.append((time.perf_counter() - start) * 1000)
    # The ceiling is the best of a reading before and one after (the Go side
    # also reads between steps): on a shared host any one reading can be low.
    res["ceiling_gflops"] = max(res["ceiling_gflops"], matmul_gflops(device, dtype=ceiling_dtype))
    if "ceiling_fp32_gflops" in res:  # the fp32 one beside it: TF32 off for it
        if device.type == "cuda":
            set_tf32(False)
        res["ceiling_fp32_gflops"] = max(res["ceiling_fp32_gflops"], matmul_gflops(device))
    s = sorted(times)
    n = len(s)
    med = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    # gflops: `exp bench` rates both sides with one count (model.Config.TrainStepFLOPs,
    # via bench.Row.Add), so this script reports times only.
    res.update(ms_median=med, ms_min=s[0], ms_max=s[-1], ms_all=times,
               tokens_per_sec=res["tokens_per_step"] / (med / 1000), gflops=0.0,
               peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, loss=loss_v)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
