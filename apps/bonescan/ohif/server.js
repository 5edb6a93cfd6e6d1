/* Calls to the MONAI Label server of the same origin: GET /info/, POST /infer/<model>,
 * PUT/GET /datastore/label (tag final), POST /activelearning/<strategy>. */
import { api, changed, state } from './context.js';
import { readNifti, writeNifti } from './nifti.js';
import { labelFrames, setLabelFrames } from './viewports.js';

async function answer(response) {
  if (response.ok) return response;
  let detail = await response.text();
  try {
    detail = JSON.parse(detail).detail || detail;
  } catch (e) {
    /* plain text */
  }
  throw new Error(`HTTP ${response.status}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`);
}

export async function runModel(model = 'bstbi') {
  const t0 = performance.now();
  const form = new FormData();
  form.append('params', JSON.stringify({}));
  const response = await answer(await fetch(api(`/infer/${model}?image=${encodeURIComponent(state.seriesUID)}`), { method: 'POST', body: form }));
  let params = {};
  let frames = null;
  if ((response.headers.get('content-type') || '').startsWith('multipart/')) {
    const parts = await response.formData();
    params = JSON.parse(parts.get('params') || '{}');
    const image = parts.get('image');
    if (image && typeof image !== 'string') {
      const nifti = await readNifti(await image.arrayBuffer());
      if (nifti.columns !== state.columns || nifti.rows !== state.rows) {
        throw new Error(`label ${nifti.columns}x${nifti.rows} does not fit the image ${state.columns}x${state.rows}`);
      }
      frames = nifti.frames;
    }
  } else {
    params = await response.json();
  }
  if (frames) setLabelFrames(frames);
  await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  state.result = params;
  state.timings.inferToOverlayMs = Math.round(performance.now() - t0);
  changed();
  return params;
}

export async function saveLabel(metastatic, annotator = '') {
  if (typeof metastatic !== 'boolean') throw new Error('answer metastatic yes or no first');
  const t0 = performance.now();
  const blob = await writeNifti(labelFrames(), state.columns, state.rows, state.spacing);
  const form = new FormData();
  form.append('label', blob, 'label.nii.gz');
  form.append('params', JSON.stringify({ metastatic, annotator, source: 'ohif bonescan mode' }));
  const url = api(`/datastore/label?image=${encodeURIComponent(state.seriesUID)}&tag=final`);
  const saved = await (await answer(await fetch(url, { method: 'PUT', body: form }))).json();
  state.timings.saveMs = Math.round(performance.now() - t0);
  state.saved = saved;
  changed();
  return saved;
}

/** The study's saved final label (server's label store) back into the overlay. */
export async function loadSavedLabel() {
  const url = api(`/datastore/label?label=${encodeURIComponent(state.seriesUID)}&tag=final`);
  const response = await fetch(url);
  if (response.status === 404) throw new Error('no final label saved for this study yet');
  const nifti = await readNifti(await (await answer(response)).arrayBuffer());
  if (nifti.columns !== state.columns || nifti.rows !== state.rows) throw new Error('saved label does not fit the image');
  setLabelFrames(nifti.frames);
  return nifti.frames.length;
}

export async function nextStudy(strategy) {
  const response = await answer(
    await fetch(api(`/activelearning/${strategy}`), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })
  );
  const next = await response.json();
  if (!next?.id) throw new Error(`strategy ${strategy} proposed no study`);
  const study = next.StudyInstanceUID;
  if (!study) throw new Error(`strategy ${strategy} proposed ${next.id} without its StudyInstanceUID`);
  window.location.assign(`${window.location.pathname}?StudyInstanceUIDs=${encodeURIComponent(study)}`);
  return next;
}


/** What the panel lists from /info: the models (trained or not) and the active-learning strategies. */
export async function serverInfo() {
  const info = await (await answer(await fetch(api('/info/')))).json();
  const untrained = new Set(info.bonescan?.untrained_models || []);
  return {
    models: Object.keys(info.models || {}).map(name => ({ name, type: info.models[name].type, trained: !untrained.has(name) })),
    strategies: Object.keys(info.strategies || {}),
  };
}
