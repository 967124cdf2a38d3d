"""A cheap comparison of radial bases and priors for linear ACE on rMD17 ethanol (200 train + 30 validation,
200 test configurations, 1845 coefficients), for when the full ablation (ace_ablation.py) is too costly.

    OMP_NUM_THREADS=1 python benchmarks/ace_radial_small.py     # output: benchmarks/results_ace_radial_small.md
"""
import time, torch
from minimace.ace import LinearACE, load_protocol, mae_report
train, valid, test, e0s, el = load_protocol("ethanol", 200, 30, 200)
base = dict(r_max=5.0, n_max=8, l_max=3, max_degree=(8, 8, 6.5), l_weight=1.5)
for name, kw, fit in [("bessel", dict(radial="bessel"), {}),
                 ("agnesi pair r0", dict(radial="agnesi", r_0=None), {}),
                 ("agnesi r0=2.5", dict(radial="agnesi", r_0=2.5), {}),
                 ("bessel ridge", dict(radial="bessel"), dict(prior="ridge")),
                 ("agnesi pair r0 ridge", dict(radial="agnesi", r_0=None), dict(prior="ridge")),
                 ]:
    t = time.process_time()
    m = LinearACE(el, e0s=e0s, **base, **kw).fit(train, valid, **fit)
    r = mae_report(m, test)
    print(f"{name:24s} n={m.fit_info['num_features']} lam={m.fit_info['lambda']:.0e} E {r['energy_mae_meV']:.2f} F {r['forces_mae_meV_per_A']:.2f}  cpu {time.process_time()-t:.0f}s", flush=True)
