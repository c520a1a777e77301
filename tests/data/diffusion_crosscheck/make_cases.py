#!/usr/bin/env python3
"""Cross-check cases for the diffusion parity adapters: other seeds, shapes (B = 1..3, other F/T),
SDE parameters, predictor/corrector combinations, step counts, loss types/weightings/scalings,
spectrogram settings and ODE tolerances than the golden files in tests/data/golden/diffusion.

NOT reference output: an independent float32 re-implementation of ../shared/spec/diffusion.md
(and of the reference's operation order where rounding matters) with PyTorch 1.13 and scipy's
solve_ivp. It reproduces golden ode_rk45_default bit for bit (x and nfe 38). Same file format and
metadata keys as the goldens, `reference` says where a case comes from. Regenerate (never needed by
the build) with:  python3 tests/data/diffusion_crosscheck/make_cases.py
"""
import json, math, os, struct, sys
import numpy as np
import torch
from scipy import integrate
DT = {torch.float32: 'F32', torch.float64: 'F64', torch.int64: 'I64'}
def write_case(path, tensors, meta):
    cplx = []
    hdr = {}; blobs = []; off = 0
    for k in sorted(tensors):
        v = tensors[k]
        if not torch.is_tensor(v): v = torch.tensor(v)
        if v.is_complex():
            cplx.append(k); v = torch.view_as_real(v.resolve_conj())
        v = v.detach().contiguous()
        b = v.numpy().tobytes()
        hdr[k] = {'dtype': DT[v.dtype], 'shape': list(v.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b); off += len(b)
    m = {kk: (vv if isinstance(vv, str) else json.dumps(vv)) for kk, vv in meta.items()}
    if cplx: m['complex'] = ','.join(cplx)
    hdr['__metadata__'] = m
    h = json.dumps(hdr).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h))); f.write(h)
        for b in blobs: f.write(b)
class OUVE:
    def __init__(s, theta=1.5, sigma_min=0.05, sigma_max=0.5, N=30):
        s.theta, s.sigma_min, s.sigma_max, s.N = theta, sigma_min, sigma_max, N
        s.logsig = np.log(sigma_max / sigma_min); s.T = 1
    def sde(s, x, y, t):
        drift = s.theta * (y - x)
        sigma = s.sigma_min * (s.sigma_max / s.sigma_min) ** t
        return drift, sigma * np.sqrt(2 * s.logsig)
    def _mean(s, x0, y, t):
        e = torch.exp(-s.theta * t)[:, None, None, None]
        return e * x0 + (1 - e) * y
    def alpha(s, t): return torch.exp(-s.theta * t)
    def _std(s, t):
        sm, th, ls = s.sigma_min, s.theta, s.logsig
        return torch.sqrt((sm**2 * torch.exp(-2 * th * t) * (torch.exp(2 * (th + ls) * t) - 1) * ls) / (th + ls))
    def marginal_prob(s, x0, y, t): return s._mean(x0, y, t), s._std(t)
    def prior_sampling(s, y, z):
        std = s._std(torch.ones((y.shape[0],)))
        return y + z * std[:, None, None, None]
    def discretize(s, x, y, t, stepsize):
        dt = stepsize
        drift, diffusion = s.sde(x, y, t)
        return drift * dt, diffusion * torch.sqrt(dt)
class SBVE:
    def __init__(s, k=2.6, c=0.4, N=50, eps=1e-8):
        s.k, s.c, s.N, s.eps, s.T = k, c, N, eps, 1
    def _sigmas_alphas(s, t):
        alpha_t = torch.ones_like(t); alpha_T = torch.ones_like(t)
        sigma_t = torch.sqrt((s.c * (s.k ** (2 * t) - 1)) / (2 * math.log(s.k)))
        sigma_T = torch.sqrt(torch.tensor((s.c * (s.k ** (2 * s.T) - 1)) / (2 * math.log(s.k)), dtype=torch.float32))
        alpha_bart = alpha_t / (alpha_T + s.eps)
        sigma_bart = torch.sqrt(sigma_T**2 - sigma_t**2 + s.eps)
        return sigma_t, sigma_T, sigma_bart, alpha_t, alpha_T, alpha_bart
    def marginal_prob(s, x0, y, t):
        sigma_t, sigma_T, sigma_bart, alpha_t, alpha_T, alpha_bart = s._sigmas_alphas(t)
        wx = alpha_t * sigma_bart**2 / (sigma_T**2 + s.eps)
        wy = alpha_bart * sigma_t**2 / (sigma_T**2 + s.eps)
        mean = wx[:, None, None, None] * x0 + wy[:, None, None, None] * y
        return mean, s._std(t)
    def _std(s, t):
        sigma_t, sigma_T, sigma_bart, alpha_t, alpha_T, alpha_bart = s._sigmas_alphas(t)
        return alpha_t * sigma_bart * sigma_t / (sigma_T + s.eps)
def oracle_score(sde, mu0, s0sq):
    mu = torch.tensor(complex(*mu0), dtype=torch.complex64)
    def f(x, y, t):
        a = torch.exp(-sde.theta * t)[:, None, None, None]
        m = a * mu + (1 - a) * y
        v = (a**2 * s0sq + sde._std(t)[:, None, None, None] ** 2)
        return -(x - m) / v
    return f
def oracle_dp(sde, mu0, s0sq):
    mu = torch.tensor(complex(*mu0), dtype=torch.complex64)
    def f(x, y, t):
        sigma_t, sigma_T, sigma_bart, alpha_t, alpha_T, alpha_bart = sde._sigmas_alphas(t)
        wx = (alpha_t * sigma_bart**2 / (sigma_T**2 + sde.eps))[:, None, None, None]
        wy = (alpha_bart * sigma_t**2 / (sigma_T**2 + sde.eps))[:, None, None, None]
        sx = (alpha_t * sigma_bart * sigma_t / (sigma_T + sde.eps))[:, None, None, None]
        return mu + wx * s0sq / (wx**2 * s0sq + sx**2) * (x - wx * mu - wy * y)
    return f
class Noise:
    def __init__(s, gen): s.gen, s.draws, s.labels = gen, [], []
    def randn_like(s, x, label='?'):
        z = torch.complex(torch.randn(x.shape, generator=s.gen), torch.randn(x.shape, generator=s.gen)) * math.sqrt(0.5)
        z = z.to(torch.complex64); s.draws.append(z); s.labels.append(label); return z
def rd_update(sde, score, x, y, t, stepsize, noise, label):
    f, G = sde.discretize(x, y, t, stepsize)
    rev_f = f - G[:, None, None, None] ** 2 * score(x, y, t)
    z = noise.randn_like(x, label)
    x_mean = x - rev_f
    return x_mean + G[:, None, None, None] * z, x_mean
def em_update(sde, score, x, y, t, noise, label):
    dt = -1.0 / sde.N
    drift, diffusion = sde.sde(x, y, t)
    drift = drift - diffusion[:, None, None, None] ** 2 * score(x, y, t)
    z = noise.randn_like(x, label)
    x_mean = x + drift * dt
    return x_mean + diffusion[:, None, None, None] * np.sqrt(-dt) * z, x_mean
def corrector(kind, sde, score, x, y, t, snr, n, noise, label):
    x_mean = x
    if kind == 'none': return x, x
    std = sde.marginal_prob(x, y, t)[1]
    for i in range(n):
        grad = score(x, y, t)
        z = noise.randn_like(x, label)
        if kind == 'ald':
            step = (snr * std) ** 2 * 2
        else:
            gn = torch.norm(grad.reshape(grad.shape[0], -1), dim=-1).mean()
            nn = torch.norm(z.reshape(z.shape[0], -1), dim=-1).mean()
            step = (snr * nn / gn) ** 2 * 2 * torch.ones_like(t)
        x_mean = x + step[:, None, None, None] * grad
        x = x_mean + torch.sqrt(step * 2)[:, None, None, None] * z
    return x, x_mean
def pc_sample(sde, score, y, noise, predictor, corr, snr, csteps, denoise, eps):
    xt = sde.prior_sampling(y, noise.randn_like(y, 'prior'))
    ts = torch.linspace(sde.T, eps, sde.N)
    for i in range(sde.N):
        t = ts[i]
        stepsize = t - ts[i + 1] if i != len(ts) - 1 else ts[-1]
        vt = torch.ones(y.shape[0]) * t
        xt, xm = corrector(corr, sde, score, xt, y, vt, snr, csteps, noise, f'step{i}.corrector')
        if predictor == 'reverse_diffusion':
            xt, xm = rd_update(sde, score, xt, y, vt, stepsize, noise, f'step{i}.predictor')
        else:
            xm = xt
    nc = 0 if corr == 'none' else csteps
    return (xm if denoise else xt), sde.N * (nc + 1)
def sb_sample(sde, model, y, noise, kind, eps=1e-4):
    xt = y if kind == 'ode' else y[:, [0]]
    ts = torch.linspace(sde.T, eps, sde.N + 1)
    tp = ts[0] * torch.ones(xt.shape[0])
    sp, sT, sbp, ap, aT, abp = sde._sigmas_alphas(tp)
    times = []
    for t in ts[1:]:
        time = t * torch.ones(xt.shape[0]); times.append(time)
        st, sT, sbt, at, aT, abt = sde._sigmas_alphas(time)
        est = model(xt, y, time)
        if kind == 'ode':
            wp = at * st * sbt / (ap * sp * sbp + sde.eps)
            we = at / (sT**2 + sde.eps) * (sbt**2 - sbp * st * sbt / (sp + sde.eps))
            wy = at / (aT * sT**2 + sde.eps) * (st**2 - sp * st * sbt / (sbp + sde.eps))
            xt = wp[:, None, None, None] * xt + we[:, None, None, None] * est + wy[:, None, None, None] * y
        else:
            wp = at * st**2 / (ap * sp**2 + sde.eps)
            tmp = 1 - st**2 / (sp**2 + sde.eps)
            we = at * tmp; wz = (at * st * torch.sqrt(tmp))[:, None, None, None]
            z = noise.randn_like(xt, 'step')
            if t == ts[-1]: wz = 0.0
            xt = wp[:, None, None, None] * xt + we[:, None, None, None] * est + wz * z
        ap, sp, sbp = at, st, sbt
    return xt, 50, torch.stack(times)
def window(n_fft, kind):
    w = torch.hann_window(n_fft, periodic=True)
    return torch.sqrt(w) if kind == 'sqrthann' else w
class Data:
    def __init__(s, n_fft=510, hop_length=128, num_frames=256, window='hann', spec_factor=0.15, spec_abs_exponent=0.5, transform_type='exponent'):
        s.n_fft, s.hop_length, s.num_frames, s.wk = n_fft, hop_length, num_frames, window
        s.spec_factor, s.spec_abs_exponent, s.transform_type = spec_factor, spec_abs_exponent, transform_type
        s.window = globals()['window'](n_fft, window)
    def stft(s, sig):
        return torch.stft(sig, n_fft=s.n_fft, hop_length=s.hop_length, window=s.window, center=True, return_complex=True)
    def istft(s, spec, length=None):
        return torch.istft(spec, n_fft=s.n_fft, hop_length=s.hop_length, window=s.window, center=True, length=length)
    def spec_fwd(s, spec):
        if s.transform_type == 'exponent':
            if s.spec_abs_exponent != 1:
                e = s.spec_abs_exponent
                spec = spec.abs()**e * torch.exp(1j * spec.angle())
            spec = spec * s.spec_factor
        elif s.transform_type == 'log':
            spec = torch.log(1 + spec.abs()) * torch.exp(1j * spec.angle())
            spec = spec * s.spec_factor
        return spec
    def spec_back(s, spec):
        if s.transform_type == 'exponent':
            spec = spec / s.spec_factor
            if s.spec_abs_exponent != 1:
                e = s.spec_abs_exponent
                spec = spec.abs()**(1/e) * torch.exp(1j * spec.angle())
        elif s.transform_type == 'log':
            spec = spec / s.spec_factor
            spec = (torch.exp(spec.abs()) - 1) * torch.exp(1j * spec.angle())
        return spec
class Model:
    def __init__(s, sde, backbone, w, data=None, t_eps=0.03, loss_type='score_matching', loss_weighting='sigma^2',
                 network_scaling=None, c_in='1', c_out='1', c_skip='0', sigma_data=0.1, l1_weight=0.001, pesq_weight=0.0):
        s.__dict__.update(locals()); del s.__dict__['s']
    def dnn_v2(s, x, y, t): return s.w[0] * x + s.w[1] * y + s.w[2] * t[:, None, None, None]
    def dnn_old(s, inp, t): return s.w[0] * inp[:, 0:1] + s.w[1] * inp[:, 1:2] + s.w[2] * t[:, None, None, None]
    def _c_in(s, t):
        if s.c_in == '1': return 1.0
        sig = s.sde._std(t); return (1.0 / torch.sqrt(sig**2 + s.sigma_data**2))[:, None, None, None]
    def _c_out(s, t):
        if s.c_out == '1': return 1.0
        sig = s.sde._std(t)
        if s.c_out == 'sigma': return sig[:, None, None, None]
        if s.c_out == '1/sigma': return 1.0 / sig[:, None, None, None]
        return (sig * s.sigma_data / torch.sqrt(s.sigma_data**2 + sig**2))[:, None, None, None]
    def _c_skip(s, t):
        if s.c_skip == '0': return 0.0
        sig = s.sde._std(t); return (s.sigma_data**2 / (sig**2 + s.sigma_data**2))[:, None, None, None]
    def forward(s, x_t, y, t):
        if s.backbone == 'ncsnpp_v2':
            F = s.dnn_v2(s._c_in(t) * x_t, s._c_in(t) * y, t)
            if s.network_scaling == '1/sigma': F = F / s.sde._std(t)[:, None, None, None]
            elif s.network_scaling == '1/t': F = F / t[:, None, None, None]
            if s.loss_type == 'score_matching': return s._c_skip(t) * x_t + s._c_out(t) * F
            if s.loss_type == 'denoiser': return (F - x_t) / s.sde._std(t)[:, None, None, None].pow(2)
            return s._c_skip(t) * x_t + s._c_out(t) * F
        return -s.dnn_old(torch.cat([x_t, y], dim=1), t)
    def _loss(s, fo, x_t, z, t, mean, x):
        sigma = s.sde._std(t)[:, None, None, None]
        if s.loss_type == 'score_matching':
            if s.loss_weighting in ('sigma^2', 'mse'): losses = torch.square(torch.abs(fo * sigma + z))
            else: losses = torch.abs(fo * sigma + z)
            return torch.mean(0.5 * torch.sum(losses.reshape(losses.shape[0], -1), dim=-1))
        if s.loss_type == 'denoiser':
            D = fo * sigma.pow(2) + x_t
            losses = torch.square(torch.abs(D - mean))
            if s.loss_weighting == 'sigma^2': losses = losses * sigma**2
            elif s.loss_weighting == 'edm':
                losses = ((sigma**2 + s.sigma_data**2) / ((sigma * s.sigma_data)**2))[:, None, None, None] * losses
            return torch.mean(0.5 * torch.sum(losses.reshape(losses.shape[0], -1), dim=-1))
        B, C, F, T = x.shape
        ltf = (1 / (F * T)) * torch.square(torch.abs(fo - x))
        ltf = torch.mean(0.5 * torch.sum(ltf.reshape(ltf.shape[0], -1), dim=-1))
        L = (s.data.num_frames - 1) * s.data.hop_length
        xh = s.data.istft(s.data.spec_back(fo.squeeze()), L)
        xx = s.data.istft(s.data.spec_back(x.squeeze()), L)
        l1 = (1 / L) * torch.abs(xh - xx)
        l1 = torch.mean(0.5 * torch.sum(l1.reshape(l1.shape[0], -1), dim=-1))
        return ltf + s.l1_weight * l1
    def step(s, x, y, u, z):
        t = u * (s.sde.T - s.t_eps) + s.t_eps
        mean, std = s.sde.marginal_prob(x, y, t)
        x_t = mean + std[:, None, None, None] * z
        fo = s.forward(x_t, y, t)
        return s._loss(fo, x_t, z, t, mean, x), dict(t=t, mean=mean, std=std, x_t=x_t, forward_out=fo)
OUT = os.path.dirname(os.path.abspath(__file__))
ORC = {"mu0": [0.1, -0.05], "s0sq": 0.2}
def cr(shape, g): return torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g)).to(torch.complex64) * 0.5
def stack(d): return torch.stack(d) if d else None
def meta(module, kind, config, call, atol, rtol, labels=None, notes=''):
    m = dict(module=module, case_kind=kind, reference='tests/data/diffusion_crosscheck/make_cases.py (spec re-implementation, not the reference)', config=config, call=call,
             atol=str(atol), rtol=str(rtol), notes=notes)
    if labels is not None: m['noise_labels'] = labels
    return m
def mk_sde(name, kw): return OUVE(**kw) if name == 'ouve' else SBVE(**kw)

# ---------------- training steps
def train_case(name, sde_name, skw, backbone, mkw, shape, seed, data_kwargs=None):
    g = torch.Generator().manual_seed(seed)
    sde = mk_sde(sde_name, skw)
    x, y = cr(shape, g), cr(shape, g)
    w = cr([3], g).requires_grad_(True)
    data = None
    if data_kwargs: data = Data(**data_kwargs)
    mkw2 = dict(mkw)
    m = Model(sde, backbone, w, data=data, **mkw2)
    u = torch.rand(shape[0], generator=g)
    z = Noise(g).randn_like(x)
    loss, mid = m.step(x, y, u, z)
    loss.backward()
    cfg = {"sde": sde_name, "backbone": backbone, "sde_kwargs": skw, "model_kwargs": mkw}
    if data_kwargs: cfg["data_kwargs"] = data_kwargs
    t = {'in.x': x, 'in.y': y, 'in.u': u[None], 'in.noise': z[None], 'param.dnn.w': w.detach(), 'in.grad_out.loss': torch.tensor(1.0),
         'out.loss': loss.detach(), 'grad.param.dnn.w': w.grad}
    for k, v in mid.items(): t['mid.' + k] = v.detach()
    write_case(f'{OUT}/{name}.safetensors', t, meta('train_step', 'train_step', cfg, {"method": "ScoreModel._step((x, y), 0) then loss.backward()"}, 1e-5, 1e-4, ['z']))

OUVE2 = {"theta": 1.0, "sigma_min": 0.02, "sigma_max": 0.8, "N": 30}
train_case('t_ncsnpp_denoiser_sig2_B3', 'ouve', OUVE2, 'ncsnpp', {"t_eps": 0.05, "loss_type": "denoiser", "loss_weighting": "sigma^2"}, [3, 1, 5, 4], 1)
train_case('t_v2_sm_cout_sigma_1t_B1', 'ouve', OUVE2, 'ncsnpp_v2', {"t_eps": 0.03, "loss_type": "score_matching", "loss_weighting": "sigma^2", "network_scaling": "1/t", "c_in": "edm", "c_out": "sigma", "sigma_data": 0.2}, [1, 1, 5, 4], 2)
train_case('t_v2_sm_cout_1oversig_null_B2', 'ouve', OUVE2, 'ncsnpp_v2', {"t_eps": 0.03, "loss_type": "score_matching", "loss_weighting": "sigma^2", "network_scaling": None, "c_in": "1", "c_out": "1/sigma", "c_skip": "edm", "sigma_data": 0.1}, [2, 1, 5, 4], 3)
train_case('t_v2_den_edm_B3', 'ouve', {"theta": 1.5, "sigma_min": 0.05, "sigma_max": 0.5, "N": 30}, 'ncsnpp_v2', {"t_eps": 0.03, "loss_type": "denoiser", "loss_weighting": "edm", "c_in": "edm", "sigma_data": 0.3}, [3, 1, 5, 4], 4)
train_case('t_v2_den_sig2_sbve', 'sbve', {"k": 3.0, "c": 0.5, "N": 10, "eps": 1e-8}, 'ncsnpp_v2', {"t_eps": 0.03, "loss_type": "denoiser", "loss_weighting": "sigma^2"}, [2, 1, 5, 4], 5)
dk = {"n_fft": 14, "hop_length": 4, "num_frames": 6, "window": "hann", "spec_factor": 0.15, "spec_abs_exponent": 0.5, "transform_type": "exponent"}
train_case('t_sbve_dp_B1', 'sbve', {"k": 2.6, "c": 0.4, "N": 50, "eps": 1e-8}, 'ncsnpp_v2', {"t_eps": 0.03, "loss_type": "data_prediction", "l1_weight": 0.5, "pesq_weight": 0.0}, [1, 1, 8, 6], 6, dk)
dk2 = {"n_fft": 16, "hop_length": 4, "num_frames": 5, "window": "sqrthann", "spec_factor": 0.3, "spec_abs_exponent": 1.0, "transform_type": "log"}
train_case('t_sbve_dp_B3_log', 'sbve', {"k": 3.0, "c": 0.5, "N": 10, "eps": 1e-8}, 'ncsnpp_v2', {"t_eps": 0.03, "loss_type": "data_prediction", "c_out": "edm", "c_skip": "edm", "l1_weight": 0.1}, [3, 1, 9, 5], 7, dk2)
dk3 = {"n_fft": 14, "hop_length": 4, "num_frames": 7, "window": "hann", "spec_factor": 0.2, "spec_abs_exponent": 0.667, "transform_type": "exponent"}
train_case('t_sbve_dp_B2_e', 'sbve', {"k": 2.6, "c": 0.4, "N": 50, "eps": 1e-8}, 'ncsnpp_v2', {"t_eps": 0.03, "loss_type": "data_prediction", "l1_weight": 0.3}, [2, 1, 8, 7], 8, dk3)

# ---------------- dsm given score
def dsm_case(name, sde_name, skw, call, shape, seed):
    g = torch.Generator().manual_seed(seed)
    sde = mk_sde(sde_name, skw)
    x, y, score = cr(shape, g), cr(shape, g), cr(shape, g) * 4
    u = torch.rand(shape[0], generator=g); z = Noise(g).randn_like(x)
    m = Model(sde, 'ncsnpp', None, loss_type=call.get('loss_type', 'score_matching'), loss_weighting=call.get('loss_weighting', 'sigma^2'), t_eps=call['t_eps'])
    t = u * (1 - m.t_eps) + m.t_eps
    mean, std = sde.marginal_prob(x, y, t)
    x_t = mean + std[:, None, None, None] * z
    loss = m._loss(score, x_t, z, t, mean, x)
    cfg = {"sde": sde_name, "sde_kwargs": skw, "oracle": ORC}
    T = {'in.x': x, 'in.y': y, 'in.u': u[None], 'in.noise': z[None], 'in.score': score, 'out.loss': loss, 'mid.t': t, 'mid.std': std, 'mid.mean': mean, 'mid.x_t': x_t}
    write_case(f'{OUT}/{name}.safetensors', T, meta('train_step', 'dsm_given_score', cfg, call, 1e-5, 1e-5, ['z']))
dsm_case('d_ouve_B3', 'ouve', OUVE2, {"method": "x", "t_eps": 0.1, "loss_type": "score_matching", "loss_weighting": "sigma^2"}, [3, 1, 4, 5], 11)
dsm_case('d_sbve_B1', 'sbve', {"k": 2.0, "c": 1.0, "N": 20, "eps": 1e-8}, {"method": "x", "t_eps": 0.03, "loss_type": "score_matching", "loss_weighting": "sigma^2"}, [1, 1, 4, 5], 12)
dsm_case('d_ouve_den1', 'ouve', OUVE2, {"method": "x", "t_eps": 0.03, "loss_type": "denoiser", "loss_weighting": "1"}, [2, 1, 4, 5], 13)
dsm_case('d_ouve_mae_B1', 'ouve', OUVE2, {"method": "x", "t_eps": 0.03, "loss_type": "score_matching", "loss_weighting": "mae"}, [1, 1, 4, 5], 14)
dsm_case('d_ouve_den_sig2', 'ouve', OUVE2, {"method": "x", "t_eps": 0.03, "loss_type": "denoiser", "loss_weighting": "sigma^2"}, [3, 1, 4, 5], 15)
OUVE2 = {"theta": 1.0, "sigma_min": 0.02, "sigma_max": 0.8, "N": 30}
def orc(mu0, s0sq): return {"mu0": mu0, "s0sq": s0sq}
def pc_case(name, skw, o, call, shape, seed):
    g = torch.Generator().manual_seed(seed)
    sde = OUVE(**skw); y = cr(shape, g); noise = Noise(g)
    score = oracle_score(sde, o['mu0'], o['s0sq'])
    x, nfe = pc_sample(sde, score, y, noise, call['predictor'], call['corrector'], call['snr'], call['corrector_steps'], call['denoise'], call['eps'])
    cfg = {"sde": "ouve", "sde_kwargs": skw, "oracle": o}
    call = dict(call, method="get_pc_sampler(...)()", N=skw['N'])
    T = {'in.y': y, 'out.x_result': x, 'out.nfe': torch.tensor(nfe)}
    if noise.draws: T['in.noise'] = torch.stack(noise.draws)
    write_case(f'{OUT}/{name}.safetensors', T, meta('sampler', 'pc_sampler', cfg, call, 1e-4, 1e-4, noise.labels))
pc_case('p_rd_ald3_N3_B1', dict(OUVE2, N=3), orc([0.2, 0.1], 0.3), dict(predictor='reverse_diffusion', corrector='ald', snr=0.2, corrector_steps=3, denoise=True, eps=0.05), [1, 1, 5, 3], 21)
pc_case('p_none_none_N5_B3', dict(OUVE2, N=5), orc([0.2, 0.1], 0.3), dict(predictor='none', corrector='none', snr=0.5, corrector_steps=1, denoise=True, eps=0.03), [3, 1, 5, 3], 22)
pc_case('p_rd_lang2_N7_nodn_B3', dict(OUVE2, N=7), orc([0.0, 0.1], 0.1), dict(predictor='reverse_diffusion', corrector='langevin', snr=0.33, corrector_steps=2, denoise=False, eps=0.03), [3, 1, 4, 6], 23)
pc_case('p_none_ald_N2_B2', dict(OUVE2, N=2), orc([0.0, 0.1], 0.1), dict(predictor='none', corrector='ald', snr=0.5, corrector_steps=1, denoise=False, eps=0.03), [2, 1, 4, 6], 24)
pc_case('p_rd_ald_N1_B2', dict(OUVE2, N=1), orc([0.0, 0.1], 0.1), dict(predictor='reverse_diffusion', corrector='ald', snr=0.5, corrector_steps=1, denoise=True, eps=0.03), [2, 1, 4, 6], 25)
pc_case('p_rd_none_N12_B2', {"theta": 1.5, "sigma_min": 0.05, "sigma_max": 0.5, "N": 12}, orc([0.1, -0.05], 0.2), dict(predictor='reverse_diffusion', corrector='none', snr=0.5, corrector_steps=1, denoise=False, eps=0.01), [2, 1, 3, 2], 26)

def step_case(name, skw, o, kind, call, shape, seed, stepsize=None):
    g = torch.Generator().manual_seed(seed)
    sde = OUVE(**skw); x, y = cr(shape, g), cr(shape, g); noise = Noise(g)
    t = torch.rand(shape[0], generator=g) * 0.9 + 0.05
    score = oracle_score(sde, o['mu0'], o['s0sq'])
    T = {'in.x': x, 'in.y': y, 'in.t': t}
    if kind == 'predictor_step':
        st = torch.tensor(stepsize, dtype=torch.float32); T['in.stepsize'] = st
        if call['predictor'] == 'reverse_diffusion': xo, xm = rd_update(sde, score, x, y, t, st, noise, '?')
        elif call['predictor'] == 'euler_maruyama': xo, xm = em_update(sde, score, x, y, t, noise, '?')
        else: xo, xm = x, x
    else:
        xo, xm = corrector(call['corrector'], sde, score, x, y, t, call['snr'], call['n_steps'], noise, '?')
    T['out.x'] = xo; T['out.x_mean'] = xm
    if noise.draws: T['in.noise'] = torch.stack(noise.draws)
    cfg = {"sde": "ouve", "sde_kwargs": skw, "oracle": o}
    write_case(f'{OUT}/{name}.safetensors', T, meta('sampler', kind, cfg, dict(call, method='update_fn'), 1e-5, 1e-5, noise.labels if noise.draws else None))
step_case('s_em_B3', dict(OUVE2, N=17), orc([0.2, 0.1], 0.3), 'predictor_step', dict(predictor='euler_maruyama', probability_flow=False), [3, 1, 4, 3], 31, 0.07)
step_case('s_rd_B1', dict(OUVE2, N=17), orc([0.2, 0.1], 0.3), 'predictor_step', dict(predictor='reverse_diffusion', probability_flow=False), [1, 1, 4, 3], 32, 0.11)
step_case('s_ald3_B3', OUVE2, orc([0.2, 0.1], 0.3), 'corrector_step', dict(corrector='ald', snr=0.16, n_steps=3), [3, 1, 4, 3], 33)
step_case('s_lang3_B3', OUVE2, orc([0.2, 0.1], 0.3), 'corrector_step', dict(corrector='langevin', snr=0.16, n_steps=3), [3, 1, 4, 3], 34)
step_case('s_lang1_B1', OUVE2, orc([0.2, 0.1], 0.3), 'corrector_step', dict(corrector='langevin', snr=0.5, n_steps=1), [1, 1, 4, 3], 35)

def sb_case(name, skw, o, kind, shape, seed, atol):
    g = torch.Generator().manual_seed(seed)
    sde = SBVE(**skw); y = cr(shape, g); noise = Noise(g)
    x, n, times = sb_sample(sde, oracle_dp(sde, o['mu0'], o['s0sq']), y, noise, kind)
    T = {'in.y': y, 'out.x': x, 'out.n_steps_returned': torch.tensor(n), 'mid.model_times': times}
    if noise.draws: T['in.noise'] = torch.stack(noise.draws)
    cfg = {"sde": "sbve", "sde_kwargs": skw, "oracle": o}
    write_case(f'{OUT}/{name}.safetensors', T, meta('sampler', 'sb_sampler', cfg, {"method": "get_sb_sampler(...)()", "sampler_type": kind, "eps": 1e-4, "N": skw['N']}, atol, atol, noise.labels if noise.draws else None))
sb_case('sb_ode_k3_N3_B1', {"k": 3.0, "c": 0.5, "N": 3, "eps": 1e-8}, orc([0.2, 0.1], 0.3), 'ode', [1, 1, 4, 3], 41, 2e-3)
sb_case('sb_sde_N7_B3', {"k": 2.6, "c": 0.4, "N": 7, "eps": 1e-8}, orc([0.2, 0.1], 0.3), 'sde', [3, 1, 4, 3], 42, 1e-4)
sb_case('sb_ode_N12_B2', {"k": 2.0, "c": 1.0, "N": 12, "eps": 1e-8}, orc([0.2, 0.1], 0.3), 'ode', [2, 1, 4, 3], 43, 2e-3)

def spec_case(name, dk, L, seed, lead=(1,)):
    g = torch.Generator().manual_seed(seed)
    d = Data(**dict(dk, num_frames=2))
    wav = torch.randn(list(lead) + [L], generator=g)
    X = d.stft(wav); Y = d.spec_fwd(X); Xb = d.spec_back(Y); w = d.istft(Xb, L)
    T = {'in.wav': wav, 'mid.window': d.window, 'out.stft': X, 'out.spec_fwd': Y, 'out.spec_back': Xb, 'out.wav_rec': w}
    write_case(f'{OUT}/{name}.safetensors', T, meta('spec', 'spec_transform', {"data_kwargs": dk}, {"method": "stft -> spec_fwd -> spec_back -> istft(length=L)"}, 1e-5, 1e-4))
spec_case('sp_odd_fft', {"n_fft": 15, "hop_length": 5, "window": "sqrthann", "spec_factor": 0.2, "spec_abs_exponent": 0.8, "transform_type": "exponent"}, 123, 51)
spec_case('sp_log_B2', {"n_fft": 16, "hop_length": 4, "window": "hann", "spec_factor": 0.333, "spec_abs_exponent": 1.0, "transform_type": "log"}, 77, 52, (2,))
spec_case('sp_none_sqrt', {"n_fft": 20, "hop_length": 10, "window": "sqrthann", "spec_factor": 0.15, "spec_abs_exponent": 0.5, "transform_type": "none"}, 90, 53)

def pad_case(name, shape, seed):
    g = torch.Generator().manual_seed(seed)
    Y = cr(shape, g)
    T_ = Y.size(3); pad = 64 - T_ % 64 if T_ % 64 != 0 else 0
    zp = torch.nn.functional.pad(Y, (0, pad, 0, 0))
    rf = torch.view_as_complex(torch.stack([torch.nn.functional.pad(Y.real, (0, pad, 0, 0), mode='reflect'), torch.nn.functional.pad(Y.imag, (0, pad, 0, 0), mode='reflect')], -1).contiguous()) if pad else Y
    write_case(f'{OUT}/{name}.safetensors', {'in.Y': Y, 'out.zero_pad': zp, 'out.reflection': rf}, meta('spec', 'pad_spec', {}, {"method": "pad_spec(Y, mode)", "modes": ["zero_pad", "reflection"]}, 0.0, 0.0))
pad_case('pad_B2_70', [2, 1, 3, 70], 61)
pad_case('pad_64', [1, 1, 3, 64], 62)
def orc(mu0, s0sq): return {"mu0": mu0, "s0sq": s0sq}
def sde_cases(prefix, name, skw, o, shape, seed):
    g = torch.Generator().manual_seed(seed)
    sde = OUVE(**skw) if name == 'ouve' else SBVE(**skw)
    x, y, x0 = cr(shape, g), cr(shape, g), cr(shape, g)
    B = shape[0]
    t = torch.rand(B, generator=g) * 0.9 + 0.05
    tv = torch.tensor([0.0, 1e-5, 1e-3, 0.01, 0.03, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0])
    cfg = {"sde": name, "sde_kwargs": skw, "oracle": o}
    mean, std = sde.marginal_prob(x0, y, t)
    T = {'in.x0': x0, 'in.y': y, 'in.t': t, 'in.t_vec': tv, 'out.mean': mean, 'out.std': std, 'out.std_vec': sde._std(tv)}
    if name == 'ouve': T['out.alpha_vec'] = sde.alpha(tv)
    else:
        st_, sT, sb, at, aT, ab = sde._sigmas_alphas(tv)
        T.update({'out.sigma_t_vec': st_, 'out.sigma_T_vec': sT, 'out.sigma_bart_vec': sb, 'out.alpha_t_vec': at, 'out.alpha_T_vec': aT, 'out.alpha_bart_vec': ab})
    write_case(f'{OUT}/{prefix}_marginal.safetensors', T, meta('sde', 'sde_marginal', cfg, {"method": "marginal_prob"}, 1e-5, 1e-5))
    if name == 'ouve':
        drift, diff = sde.sde(x, y, t)
    else:
        drift, diff = torch.tensor(0.0), math.sqrt(sde.c) * sde.k ** t
    write_case(f'{OUT}/{prefix}_sde.safetensors', {'in.x': x, 'in.y': y, 'in.t': t, 'out.drift': drift, 'out.diffusion': diff}, meta('sde', 'sde_sde', cfg, {"method": "sde"}, 1e-6, 1e-5))
    st = torch.tensor(0.0371)
    if name == 'ouve':
        f, G = sde.discretize(x, y, t, st)
    else:
        f, G = drift * st, diff * torch.sqrt(st)
    write_case(f'{OUT}/{prefix}_discretize.safetensors', {'in.x': x, 'in.y': y, 'in.t': t, 'in.stepsize': st, 'out.f': f, 'out.G': G}, meta('sde', 'sde_discretize', cfg, {"method": "discretize"}, 1e-6, 1e-5))
    noise = Noise(g)
    if name == 'ouve': xT = sde.prior_sampling(y, noise.randn_like(y))
    else: xT = y.clone()
    T = {'in.y': y, 'out.x_T': xT}
    if noise.draws: T['in.noise'] = torch.stack(noise.draws)
    write_case(f'{OUT}/{prefix}_prior.safetensors', T, meta('sde', 'sde_prior', cfg, {"method": "prior_sampling"}, 1e-6, 1e-5, noise.labels if noise.draws else None))
    if name == 'ouve':
        score = oracle_score(sde, o['mu0'], o['s0sq'])
        for pf in (False, True):
            s = score(x, y, t)
            drift, diff = sde.sde(x, y, t)
            rd = drift - diff[:, None, None, None] ** 2 * s * (0.5 if pf else 1.0)
            rdiff = torch.zeros_like(diff) if pf else diff
            f, G = sde.discretize(x, y, t, st)
            rf = f - G[:, None, None, None] ** 2 * s * (0.5 if pf else 1.0)
            rG = torch.zeros_like(G) if pf else G
            write_case(f'{OUT}/{prefix}_reverse{"_pflow" if pf else ""}.safetensors', {'in.x': x, 'in.y': y, 'in.t': t, 'in.stepsize': st, 'mid.score': s, 'out.rsde_drift': rd, 'out.rsde_diffusion': rdiff, 'out.rev_f': rf, 'out.rev_G': rG},
                       meta('sde', 'sde_reverse', cfg, {"method": "reverse", "probability_flow": pf}, 1e-5, 1e-5))
sde_cases('sde_ouve_x', 'ouve', {"theta": 0.7, "sigma_min": 0.01, "sigma_max": 1.5, "N": 11}, orc([0.3, 0.2], 0.4), [3, 1, 4, 5], 71)
sde_cases('sde_ouve_b1', 'ouve', {"theta": 3.0, "sigma_min": 0.1, "sigma_max": 0.3, "N": 1000}, orc([0.3, 0.2], 0.4), [1, 1, 2, 7], 72)
sde_cases('sde_sbve_x', 'sbve', {"k": 1.5, "c": 2.0, "N": 7, "eps": 1e-6}, orc([0.3, 0.2], 0.4), [3, 1, 4, 5], 73)
def ode_case(name, skw, o, shape, seed, rtol, atol, eps):
    g = torch.Generator().manual_seed(seed)
    sde = OUVE(**skw); y = cr(shape, g); noise = Noise(g)
    score = oracle_score(sde, o['mu0'], o['s0sq'])
    x = sde.prior_sampling(y, noise.randn_like(y, 'prior'))
    def f(t, xs):
        xx = torch.from_numpy(xs.reshape(y.shape)).type(torch.complex64)
        vt = torch.ones(y.shape[0]) * t
        drift, diff = sde.sde(xx, y, vt)
        d = drift - diff[:, None, None, None] ** 2 * score(xx, y, vt) * 0.5
        return d.numpy().reshape(-1)
    sol = integrate.solve_ivp(f, (1, eps), x.numpy().reshape(-1), rtol=rtol, atol=atol, method='RK45')
    xo = torch.tensor(sol.y[:, -1]).reshape(y.shape).type(torch.complex64)
    T = {'in.y': y, 'in.noise': torch.stack(noise.draws), 'out.x': xo, 'out.nfe': torch.tensor(sol.nfev)}
    cfg = {"sde": "ouve", "sde_kwargs": skw, "oracle": o}
    write_case(f'{OUT}/{name}.safetensors', T, meta('sampler', 'ode_sampler', cfg, {"method": "get_ode_sampler(...)()", "denoise": False, "rtol": rtol, "atol": atol, "method_ivp": "RK45", "eps": eps}, 2e-4, 1e-4, noise.labels))
    print(name, sol.nfev)
ode_case('ode_B1_x', {"theta": 1.0, "sigma_min": 0.02, "sigma_max": 0.8, "N": 30}, {"mu0": [0.2, 0.1], "s0sq": 0.3}, [1, 1, 4, 3], 81, 1e-5, 1e-5, 0.03)
ode_case('ode_B3_tol', {"theta": 1.5, "sigma_min": 0.05, "sigma_max": 0.5, "N": 30}, {"mu0": [0.1, -0.05], "s0sq": 0.2}, [3, 1, 5, 4], 82, 1e-3, 1e-4, 0.05)
ode_case('ode_48k', {"theta": 2.0, "sigma_min": 0.1, "sigma_max": 1.0, "N": 30}, {"mu0": [0.0, 0.0], "s0sq": 0.5}, [2, 1, 8, 6], 83, 1e-5, 1e-5, 0.03)
ode_case('ode_sm_B2', {"theta": 0.5, "sigma_min": 0.01, "sigma_max": 1.2, "N": 30}, {"mu0": [0.3, -0.2], "s0sq": 0.05}, [2, 1, 6, 5], 84, 1e-5, 1e-5, 0.03)
ode_case('ode_rtol4', {"theta": 1.5, "sigma_min": 0.05, "sigma_max": 0.5, "N": 30}, {"mu0": [0.1, -0.05], "s0sq": 0.2}, [2, 1, 8, 6], 85, 1e-4, 1e-6, 0.01)
