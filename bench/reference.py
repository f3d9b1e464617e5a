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

Run with Debian's python3-torch (1.13.1: the same libtorch and OpenBLAS as
the Go side) and the same thread count. It prints one JSON line with the
same keys as bench.Result.
"""
import argparse
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
        return F.layer_norm(x, (self.n,), self.weight, self.bias, self.eps)


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
        return mlm_logits, self.sentence(pooled)


def decays(model):
    """Official exclusion: no decay / trust ratio for LayerNorm and bias."""
    return [(p, "layer_norm" not in name and "bias" not in name) for name, p in model.named_parameters()]


class Lamb:
    """train/lamb.go: m, v without bias correction; u = m/(sqrt(v)+eps) + wd*w;
    r = |w|/|u| (1 if either is 0) on decayed tensors; w -= lr*r*u."""

    def __init__(self, params, b1=0.9, b2=0.999, eps=1e-6, wd=0.01):
        self.params = params
        self.b1, self.b2, self.eps, self.wd = b1, b2, eps, wd
        self.m = [torch.zeros_like(p) for p, _ in params]
        self.v = [torch.zeros_like(p) for p, _ in params]

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


def matmul_gflops(device, n=1024):
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True, help="bench.Spec as JSON")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    name = a.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("reference.py: --device %s but this torch sees no CUDA device" % a.device)
    device = torch.device(name)
    spec = json.loads(a.spec)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    res = {"impl": "pytorch", "config": spec["name"], "device": str(device), "threads": torch.get_num_threads(),
           "steps": a.steps, "tokens_per_step": spec["batch"] * spec["seq"]}
    res["ceiling_gflops"] = matmul_gflops(device)
    torch.manual_seed(1)
    model = Albert(spec["model"]).to(device)
    model.train()
    params = decays(model)
    opt = Lamb(params)
    plist = [p for p, _ in params]
    data = [tuple(t.to(device) for t in b) for b in batches(spec, 4, 1)]
    times, loss_v = [], float("nan")
    total = a.warmup + a.steps
    for step in range(total):
        torch.manual_seed(step + 1)
        ids, seg, mask, pos, mids, w, labels = data[step % len(data)]
        start = time.perf_counter()
        for p in plist:
            p.grad = None
        mlm_logits, sent_logits = model(ids, seg, mask, pos)
        nll = -torch.log_softmax(mlm_logits, -1).gather(1, mids.unsqueeze(1)).squeeze(1)
        mlm = (nll * w).sum() / (w.sum() + 1e-5)
        loss = mlm + F.cross_entropy(sent_logits, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plist, 1.0)
        opt.step(1e-4)
        # As the Go side: the loss is read back every 10 steps on the CPU and
        # every step on a GPU, so a step's queued work is inside its own time.
        if device.type == "cuda" or step % 10 == 9 or step == total - 1:
            loss_v = loss.item()
        if step >= a.warmup:
            times.append((time.perf_counter() - start) * 1000)
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
