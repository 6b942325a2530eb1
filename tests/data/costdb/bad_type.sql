-- Bad input: text where a number belongs.
INSERT INTO device (name, kind, memory_bytes, peak_flops, source)
  VALUES ('x1', 'gpu', '80 GB', 1e15, 'datasheet');
