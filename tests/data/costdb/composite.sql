-- Test profile (after costdb/profiles/datasheet.sql): when ffn and gate use a model of
-- their own and when they are composed from the device's gemm model.
-- cmp:      datasheet gemm and a datasheet ffn of its own: the ffn's own model wins (tie);
--           gate has none, so it composes from the gemm model.
-- cmp2:     a datasheet ffn of its own but a measured gemm: composed from the better source.
-- gemmless: only an attn model: ffn and gate cannot be costed.
INSERT INTO device (name, kind, peak_flops, source, note) VALUES
  ('cmp', 'gpu', 1e12, 'datasheet', 'test device'),
  ('cmp2', 'gpu', 1e12, 'datasheet', 'test device'),
  ('gemmless', 'gpu', 1e12, 'datasheet', 'test device without a gemm model');
INSERT INTO calibration_run (id, host, date, backend) VALUES (11, 'testhost', '2025-01-04', 'host');
INSERT INTO model (id, device, op, form, alpha_s, beta_s, source, efficiency, run_id) VALUES
  (301, 'cmp', 'gemm', 'linear', 1e-5, 1e-12, 'datasheet', 1.0, NULL),
  (302, 'cmp', 'ffn', 'linear', 2e-5, 3e-12, 'datasheet', 0.5, NULL),
  (303, 'cmp2', 'gemm', 'linear', 1e-5, 2e-12, 'measured', NULL, 11),
  (304, 'cmp2', 'ffn', 'linear', 2e-5, 3e-12, 'datasheet', 0.5, NULL),
  (305, 'gemmless', 'attn', 'linear', 1e-5, 1e-12, 'datasheet', 0.5, NULL);
