/* NIfTI in MONAI Label's layout: (columns, rows, frames), i.e. the frames back to back, row-major.
 * Plain functions of bytes (the label maps the server sends and takes). */

async function gunzipIfNeeded(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return buffer;
  return new Response(new Blob([buffer]).stream().pipeThrough(new DecompressionStream('gzip'))).arrayBuffer();
}
export async function readNifti(buffer) {
  buffer = await gunzipIfNeeded(buffer);
  const view = new DataView(buffer);
  const little = view.getInt32(0, true) === 348;
  const dims = [];
  for (let i = 0; i < 8; i++) dims.push(view.getInt16(40 + 2 * i, little));
  const datatype = view.getInt16(70, little);
  const offset = Math.round(view.getFloat32(108, little));
  const [columns, rows, frames] = [dims[1], dims[2], dims[0] >= 3 ? dims[3] : 1];
  const types = { 2: Uint8Array, 4: Int16Array, 8: Int32Array, 16: Float32Array, 64: Float64Array, 256: Int8Array, 512: Uint16Array, 768: Uint32Array };
  const Type = types[datatype];
  if (!Type) throw new Error(`NIfTI data type ${datatype} not supported`);
  const count = columns * rows * frames;
  let data;
  if (little || Type.BYTES_PER_ELEMENT === 1) data = new Type(buffer.slice(offset, offset + count * Type.BYTES_PER_ELEMENT));
  else throw new Error('big-endian NIfTI not supported');
  const out = [];
  for (let k = 0; k < frames; k++) out.push(Uint8Array.from(data.subarray(k * rows * columns, (k + 1) * rows * columns), Math.round));
  return { columns, rows, frames: out };
}
export async function writeNifti(frames, columns, rows, spacing) {
  const header = new ArrayBuffer(352);
  const view = new DataView(header);
  view.setInt32(0, 348, true);
  [3, columns, rows, frames.length, 1, 1, 1, 1].forEach((d, i) => view.setInt16(40 + 2 * i, d, true));
  view.setInt16(70, 2, true); // uint8
  view.setInt16(72, 8, true);
  const [rowSpacing, columnSpacing] = spacing;
  [1, columnSpacing, rowSpacing, 1, 1, 1, 1, 1].forEach((p, i) => view.setFloat32(76 + 4 * i, p, true));
  view.setFloat32(108, 352, true);
  view.setFloat32(112, 1, true); // scl_slope
  view.setInt16(254, 1, true); // sform_code: the same affine as the server writes
  [[-columnSpacing, 0, 0, 0], [0, -rowSpacing, 0, 0], [0, 0, 1, 0]].forEach((row, r) =>
    row.forEach((v, c) => view.setFloat32(280 + 16 * r + 4 * c, v, true))
  );
  new Uint8Array(header, 344, 4).set([0x6e, 0x2b, 0x31, 0]); // "n+1\0"
  const blob = new Blob([header, ...frames], { type: 'application/octet-stream' });
  return new Response(blob.stream().pipeThrough(new CompressionStream('gzip'))).blob();
}
