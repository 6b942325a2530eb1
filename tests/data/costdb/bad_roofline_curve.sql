-- Bad input: a roofline model must state its whole efficiency curve (no f_half_flops).
INSERT INTO model (device, op, form, alpha_s, eff_max, bw_eff, source)
  VALUES ('h100', 'gemm', 'roofline', 5e-6, 0.75, 0.8, 'datasheet');
