-- Datasheet profile: devices, links and compute cost models derived from vendor peak figures.
--
-- Sources: NVIDIA product datasheets as summarised in shared/reference/HARDWARE.md
-- (dense bf16 tensor throughput without sparsity, memory size and bandwidth as marketed;
-- GB = 1e9 bytes, TB = 1e12 bytes). host-cpu is NOT from a datasheet: it is a rough
-- guess for a generic server CPU, to be replaced by a calibration run.
--
-- GPUs: 'roofline' models for gemm and attn (docs/COSTDB.md, "Model forms"):
--   t = alpha_s + max(FLOPs / (peak_flops * eff(FLOPs)), bytes / (mem_bw * bw_eff)),
--   eff(F) = eff_max * F / (F + f_half_flops),
-- with FLOPs and bytes the op's work (cdb_work_of) and peak_flops, mem_bw from the device
-- row. The assumed efficiency curve, the same on every GPU:
--   eff_max = 0.75 for gemm: large GEMMs reach 60-80% of dense peak (HARDWARE.md); the
--             one H200 figure there, ~790 of 989 TFLOP/s, is 0.80, so 0.75 is the middle
--             of the stated range and slightly conservative for Hopper;
--   eff_max = 0.50 for attn: fused (flash-style) attention runs further from the tensor
--             peak than GEMM (softmax, masking and the two dependent products per tile);
--   bw_eff  = 0.8: streaming kernels reach roughly 80% of the marketed bandwidth;
--   f_half  = 2e9 FLOPs x (peak_flops / 989e12): half of eff_max is reached at 2 GFLOP on
--             an H100-class part (989 TFLOP/s), scaled by peak elsewhere. Why 2 GFLOP: a
--             1024^3 GEMM (2.1e9 FLOPs) has 64 output tiles of 128x128, enough for under
--             half of an H100's 132 SMs, and attention with 16 heads at 512 tokens (2.1e9
--             FLOPs at head dim 128) likewise spans 64 (head, 128-query) tiles; so about
--             half the achievable rate at that size. Scaling by peak keeps the implied
--             fill time f_half / (peak * eff_max) the same on every GPU (2.7 us for gemm,
--             4.0 us for attn): a faster part needs proportionally more work to fill.
--             This is an assumption, not a measurement; a calibration run replaces it.
--   alpha_s = 5 us: an assumed kernel launch overhead, as before.
-- Since F/(peak*eff(F)) = (F + f_half)/(peak*eff_max), time per FLOP falls strictly as
-- shapes grow and approaches 1/(peak*eff_max): small shapes are slower per FLOP.
-- ffn and gate have no rows here: they are composed from the gemm model (COSTDB.md).
--
-- host-cpu: no memory bandwidth figure, so no roofline: linear models in x = FLOPs,
-- beta = 1/(peak * efficiency) with efficiency 0.7 (gemm) and 0.5 (attn), alpha 1 us.
--
-- Measured or published models for the same device and op take precedence over these.
-- Link bandwidths are per direction. Latencies are assumptions, not vendor figures.
-- This file runs first among the profiles (sorted order): later ones may refer to its devices.

INSERT INTO device (name, kind, memory_bytes, peak_flops, mem_bw_bytes_per_s, source, note) VALUES
  ('a10',   'gpu',  24e9, 125e12,  600e9, 'datasheet', 'NVIDIA A10 24 GB GDDR6'),
  ('a100',  'gpu',  80e9, 312e12, 2039e9, 'datasheet', 'NVIDIA A100 SXM 80 GB HBM2e'),
  ('a6000', 'gpu',  48e9, 155e12,  768e9, 'datasheet', 'NVIDIA RTX A6000 48 GB GDDR6; peak ~155 TFLOP/s bf16 dense'),
  ('h100',  'gpu',  80e9, 989e12, 3350e9, 'datasheet', 'NVIDIA H100 SXM 80 GB HBM3'),
  ('h20',   'gpu',  96e9, 148e12, 4000e9, 'datasheet', 'NVIDIA H20 96 GB HBM3'),
  ('h200',  'gpu', 141e9, 989e12, 4800e9, 'datasheet', 'NVIDIA H200 SXM 141 GB HBM3e (one measurement: ~790 TFLOP/s bf16)'),
  ('l40s',  'gpu',  48e9, 362e12,  864e9, 'datasheet', 'NVIDIA L40S 48 GB GDDR6'),
  ('host-cpu', 'cpu', NULL, 100e9, NULL, 'datasheet',
   'a rough guess (100 GFLOP/s fp32), not a vendor figure: replace by calibration');

-- GPU gemm models (ids 1-7, in name order), derived from the device rows.
INSERT INTO model (device, op, form, alpha_s, eff_max, f_half_flops, bw_eff, source, note)
SELECT name, 'gemm', 'roofline', 5e-6, 0.75, 2e9 * (peak_flops / 989e12), 0.8, 'datasheet',
       'f_half = 2 GFLOP x peak/989 TFLOP/s (a fill time of f_half/(peak x eff_max)); '
       || 'alpha = assumed launch overhead'
FROM device WHERE source = 'datasheet' AND kind = 'gpu' ORDER BY name;

-- GPU attn models.
INSERT INTO model (device, op, form, alpha_s, eff_max, f_half_flops, bw_eff, source, note)
SELECT name, 'attn', 'roofline', 5e-6, 0.5, 2e9 * (peak_flops / 989e12), 0.8, 'datasheet',
       'f_half = 2 GFLOP x peak/989 TFLOP/s (a fill time of f_half/(peak x eff_max)); '
       || 'alpha = assumed launch overhead'
FROM device WHERE source = 'datasheet' AND kind = 'gpu' ORDER BY name;

-- The host: linear, no bandwidth figure to build a roofline from.
INSERT INTO model (device, op, form, alpha_s, beta_s, source, efficiency, note)
SELECT name, 'gemm', 'linear', 1e-6, 1.0 / (peak_flops * 0.7), 'datasheet', 0.7,
       'beta = 1/(peak_flops x 0.7); alpha = assumed call overhead'
FROM device WHERE source = 'datasheet' AND kind = 'cpu' ORDER BY name;
INSERT INTO model (device, op, form, alpha_s, beta_s, source, efficiency, note)
SELECT name, 'attn', 'linear', 1e-6, 1.0 / (peak_flops * 0.5), 'datasheet', 0.5,
       'beta = 1/(peak_flops x 0.5); alpha = assumed call overhead'
FROM device WHERE source = 'datasheet' AND kind = 'cpu' ORDER BY name;

INSERT INTO link (name, bw_bytes_per_s, latency_s, source, note) VALUES
  ('nvlink4',  450e9,  1e-6, 'datasheet', 'NVLink 4 (H100/H200/H20): 900 GB/s bidirectional'),
  ('nvlink3',  300e9,  1e-6, 'datasheet', 'NVLink 3 (A100): 600 GB/s bidirectional'),
  ('pcie4x16', 31.5e9, 2e-6, 'datasheet', 'PCIe 4.0 x16 raw; ~25 GB/s achievable'),
  ('pcie5x16', 63e9,   2e-6, 'datasheet', 'PCIe 5.0 x16 raw; ~50 GB/s achievable'),
  ('ndr400',   50e9,   2e-6, 'datasheet', 'InfiniBand NDR 400 Gb/s per NIC'),
  ('hdr200',   25e9,   2e-6, 'datasheet', 'InfiniBand HDR 200 Gb/s per NIC');
