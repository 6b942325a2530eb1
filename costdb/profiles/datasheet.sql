-- Datasheet profile: devices, links and GEMM cost models derived from vendor peak figures.
--
-- Sources: NVIDIA product datasheets as summarised in shared/reference/HARDWARE.md
-- (dense bf16 tensor throughput without sparsity, memory size and bandwidth as marketed;
-- GB = 1e9 bytes, TB = 1e12 bytes). host-cpu is NOT from a datasheet: it is a rough
-- guess for a generic server CPU, to be replaced by a calibration run.
--
-- GEMM models are linear in x = 2*m*n*k*count FLOPs: t = alpha_s + beta_s * x, with
-- beta_s = 1 / (peak_flops * efficiency) and efficiency 0.7 (large GEMMs reach 60-80% of
-- peak; small ones far less, which a later efficiency curve will capture), and alpha_s an
-- assumed kernel launch overhead (5 us on GPUs, 1 us on the host). Measured or published
-- models for the same device and op take precedence over these (docs/COSTDB.md).
--
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

-- One linear GEMM model per device, derived from the device row so the two cannot disagree.
INSERT INTO model (device, op, form, alpha_s, beta_s, source, efficiency, note)
SELECT name, 'gemm', 'linear',
       CASE kind WHEN 'gpu' THEN 5e-6 ELSE 1e-6 END,
       1.0 / (peak_flops * 0.7),
       'datasheet', 0.7,
       'beta = 1/(peak_flops x 0.7); alpha = assumed launch overhead'
FROM device WHERE source = 'datasheet' ORDER BY name;

INSERT INTO link (name, bw_bytes_per_s, latency_s, source, note) VALUES
  ('nvlink4',  450e9,  1e-6, 'datasheet', 'NVLink 4 (H100/H200/H20): 900 GB/s bidirectional'),
  ('nvlink3',  300e9,  1e-6, 'datasheet', 'NVLink 3 (A100): 600 GB/s bidirectional'),
  ('pcie4x16', 31.5e9, 2e-6, 'datasheet', 'PCIe 4.0 x16 raw; ~25 GB/s achievable'),
  ('pcie5x16', 63e9,   2e-6, 'datasheet', 'PCIe 5.0 x16 raw; ~50 GB/s achievable'),
  ('ndr400',   50e9,   2e-6, 'datasheet', 'InfiniBand NDR 400 Gb/s per NIC'),
  ('hdr200',   25e9,   2e-6, 'datasheet', 'InfiniBand HDR 200 Gb/s per NIC');
