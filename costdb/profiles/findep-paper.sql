-- Paper profile: FinDEP's published linear cost models (FinDEP, arXiv 2512.21487, Sec. cost
-- models; summarised in shared/reference/PAPERS.md), as device 'findep-paper'.
--
-- The paper does not name the testbed its fits come from, nor their units; they are kept
-- on a device of their own rather than attached to a real GPU. Published figures:
--   GEMM       t_gm(x)   = alpha_gm + beta_gm * x,     x = m*k*n multiply-adds,
--              alpha_gm = 0.17, beta_gm = 8.59e-11 (R^2 0.997);
--   attention  t_attn(y) = alpha_attn + beta_attn * y, y = heads*B*S^2*(d_k + d_v),
--              alpha_attn = 0.15, beta_attn = 1.54e-11;
--   A2E        t_c(z)    = alpha_c + beta_c * z,  (alpha_c, beta_c) = (0.10, 9.61e-7) at
--              eg=7/ag=1, (0.01, 1.28e-6) at 6/2, (0.37, 2.55e-6) at 4/4.
--
-- Unit reading (docs/COSTDB.md, "The FinDEP paper profile"):
--   * times are milliseconds (PAPERS.md: the likely reading; in microseconds the GEMM
--     fit would be 23 PFLOP/s, far beyond any GPU), so alpha_s = alpha x 1e-3;
--   * our feature is FLOPs (a multiply-add is 2 FLOPs): gemm x = 2*m*n*k = 2 x the
--     paper's x, attn x = 2*b*h*sq*skv*(dk+dv) = 2 x the paper's y (sq = skv = S), so
--     beta_s per FLOP = beta x 1e-3 / 2. The paper's t_gm and t_attn are reproduced
--     exactly: alpha_s + beta_s * (2 x) = (alpha + beta * x) ms;
--   * A2E: the paper calls z "bytes per machine" but computes it as m_e*E*M/eg, a count of
--     elements (bf16, 2 bytes each) that one EG GPU receives per chunk. We read z as that
--     element count, since the fit only enters the paper's cost model through this
--     formula: bytes = 2 z, beta_s_per_byte = beta_c x 1e-3 / 2. A transfer of
--     2 m_e E M / eg bytes then costs exactly the paper's t_a2e (and t_e2a = t_a2e).
-- ffn and gate have no rows: they compose from the gemm fit (ffn = gemms x experts
-- GEMMs of m = tokens/experts), which is the paper's t_e = 3 (E/eg) t_gm(m_e M H).
-- topologies/findep-paper-1x8.yaml turns the 4/4 A2E fit into link figures.

INSERT INTO device (name, kind, source, note) VALUES
  ('findep-paper', 'gpu', 'paper',
   'FinDEP''s fitted cost models; testbed not named, so no peak, memory or bandwidth figures');

INSERT INTO model (device, op, form, alpha_s, beta_s, r2, source, citation, note) VALUES
  ('findep-paper', 'gemm', 'linear', 1.7e-4, 4.295e-14, 0.997, 'paper',
   'FinDEP, arXiv 2512.21487, Sec. cost models',
   'alpha_gm 0.17 ms, beta_gm 8.59e-11 ms per multiply-add (x = m*k*n); units read as ms; '
   || 'beta_s = 8.59e-11 x 1e-3 / 2 s per FLOP'),
  ('findep-paper', 'attn', 'linear', 1.5e-4, 7.7e-15, NULL, 'paper',
   'FinDEP, arXiv 2512.21487, Sec. cost models',
   'alpha_attn 0.15 ms, beta_attn 1.54e-11 ms per unit of y = heads*B*S^2*(dk+dv); units '
   || 'read as ms; beta_s = 1.54e-11 x 1e-3 / 2 s per FLOP');

INSERT INTO comm_model (device, op, ag, eg, alpha_s, beta_s_per_byte, source, citation, note) VALUES
  ('findep-paper', 'a2e', 1, 7, 1.0e-4, 4.805e-10, 'paper',
   'FinDEP, arXiv 2512.21487, Sec. cost models',
   '(0.10, 9.61e-7) at eg=7/ag=1; ms per element of z = m_e*E*M/eg (bf16): beta/2 per byte'),
  ('findep-paper', 'a2e', 2, 6, 1.0e-5, 6.4e-10, 'paper',
   'FinDEP, arXiv 2512.21487, Sec. cost models',
   '(0.01, 1.28e-6) at eg=6/ag=2; ms per element of z = m_e*E*M/eg (bf16): beta/2 per byte'),
  ('findep-paper', 'a2e', 4, 4, 3.7e-4, 1.275e-9, 'paper',
   'FinDEP, arXiv 2512.21487, Sec. cost models',
   '(0.37, 2.55e-6) at eg=4/ag=4; ms per element of z = m_e*E*M/eg (bf16): beta/2 per byte');
