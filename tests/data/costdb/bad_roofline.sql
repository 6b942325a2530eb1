-- Bad input: a roofline model on a device without a memory bandwidth (host-cpu has none).
INSERT INTO model (device, op, form, alpha_s, eff_max, f_half_flops, bw_eff, source)
  VALUES ('host-cpu', 'gemm', 'roofline', 1e-6, 0.7, 1e8, 0.8, 'datasheet');
