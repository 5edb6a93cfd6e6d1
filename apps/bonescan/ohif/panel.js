/* The bonescan panel and viewport set-up, plain DOM (the host's React is not reachable from a
 * runtime module; the panel component returns one React 18 element object whose ref mounts our
 * DOM). Talks to the MONAI Label server of the same origin:
 *   GET /info/, POST /infer/bstbi, PUT /datastore/label (tag final), POST /activelearning/<s>.
 * window.bonescan exposes the state and actions (used by tests/test_viewer_browser.py). */

const SEGMENTS = {
  1: { label: 'metastatic lesion', color: [255, 40, 40, 255] },
  2: { label: 'bladder', color: [255, 210, 0, 255] },
  3: { label: 'bone', color: [40, 140, 255, 255] },
};
const VIEW_CODES = { 399321004: 'anterior', 399001007: 'posterior' };
const VIEWPORTS = { anterior: 'bonescan-ant', posterior: 'bonescan-post' };
const SHORT = { anterior: 'ANT', posterior: 'POST' };
const STRATEGIES = ['random', 'first', 'uncertainty', 'epistemic', 'diversity'];
const REACT_ELEMENT = Symbol.for('react.element');

const ctx = {}; // servicesManager, extensionManager, commandsManager
const state = {
  ready: false,
  seriesUID: null,
  studyUID: null,
  displaySetUID: null,
  segmentationId: null,
  frames: null, // {anterior: index, posterior: index} into the display set's imageIds
  viewSource: null,
  rows: 0,
  columns: 0,
  spacing: [1, 1],
  result: null,
  tool: 'WindowLevel',
  timings: {},
  messages: [],
  busy: false,
};
let timer = null;
let root = null;
let modeEnteredAt = 0;

export function setContext(context) {
  Object.assign(ctx, context);
}

function config() {
  return window.config?.bonescan || {};
}
function api(path) {
  return (config().api || window.location.origin) + path;
}
function services() {
  return ctx.servicesManager.services;
}
function libs() {
  return ctx.extensionManager
    .getModuleEntry('@ohif/extension-cornerstone.utilityModule.common')
    .exports.getCornerstoneLibraries();
}
function csViewport(viewportId) {
  return libs().cornerstone.getEnabledElementByViewportId(viewportId)?.viewport || null;
}

// ---------------------------------------------------------------------------------------------
// Which frame is which view: DetectorVector -> DetectorInformationSequence -> ViewCodeSequence.
function first(value) {
  return Array.isArray(value) ? value[0] : value;
}
export function frameViews(instance, frameCount) {
  const detectors = [].concat(instance?.DetectorInformationSequence || []);
  const vector = [].concat(instance?.DetectorVector ?? []);
  const views = [];
  const orientations = [];
  for (let k = 0; k < frameCount; k++) {
    const item = detectors[(Number(vector[k]) || k + 1) - 1];
    const code = first(item?.ViewCodeSequence)?.CodeValue;
    views.push(VIEW_CODES[String(code)] || null);
    orientations.push(item?.ImageOrientationPatient || instance?.ImageOrientationPatient || null);
  }
  const anterior = views.indexOf('anterior');
  const posterior = views.indexOf('posterior');
  if (anterior >= 0 && posterior >= 0) {
    return { frames: { anterior, posterior }, source: 'DICOM view codes', orientations };
  }
  if (anterior >= 0 || posterior >= 0) {
    const known = anterior >= 0 ? anterior : posterior;
    const other = frameCount > 1 ? 1 - known : known;
    return {
      frames: anterior >= 0 ? { anterior, posterior: other } : { anterior: other, posterior },
      source: 'view code of one frame',
      orientations,
    };
  }
  return {
    frames: { anterior: 0, posterior: Math.min(1, frameCount - 1) },
    source: 'frame order (no view codes in the file)',
    orientations,
  };
}

/* Patient side at the left/right image edge from the frame's row direction (LPS: +x = patient left). */
function sideMarkers(orientation) {
  const rx = orientation ? Number(orientation[0]) : NaN;
  if (rx > 0.5) return ['R', 'L'];
  if (rx < -0.5) return ['L', 'R'];
  return ['', ''];
}

// ---------------------------------------------------------------------------------------------
// Viewport set-up: frames, labels, the shared labelmap segmentation.
function labelViewport(viewport, view, orientation) {
  const element = viewport.element;
  element.querySelectorAll('.bonescan-overlay').forEach(node => node.remove());
  if (getComputedStyle(element).position === 'static') element.style.position = 'relative';
  const [left, right] = sideMarkers(orientation);
  const add = (text, style, cls) => {
    const node = document.createElement('div');
    node.className = 'bonescan-overlay ' + cls;
    node.textContent = text;
    Object.assign(node.style, style);
    element.appendChild(node);
  };
  add(SHORT[view], { top: '6px', left: '50%', transform: 'translateX(-50%)', fontSize: '20px' }, 'bonescan-view-label');
  if (left) add(left, { top: '50%', left: '6px' }, 'bonescan-side');
  if (right) add(right, { top: '50%', right: '6px' }, 'bonescan-side');
}

async function setUp() {
  const { viewportGridService, displaySetService, segmentationService } = services();
  const uid = viewportGridService.getDisplaySetsUIDsForViewport?.(VIEWPORTS.anterior)?.[0];
  const ant = csViewport(VIEWPORTS.anterior);
  const post = csViewport(VIEWPORTS.posterior);
  if (!uid || !ant || !post || !ant.getImageIds?.().length || !post.getImageIds?.().length) return false;
  if (!ant.getCurrentImageId?.() || !post.getCurrentImageId?.()) return false;
  const displaySet = displaySetService.getDisplaySetByUID(uid);
  const instance = displaySet.instance || displaySet.instances?.[0];
  const imageIds = displaySet.imageIds;
  const { frames, source, orientations } = frameViews(instance, imageIds.length);
  Object.assign(state, {
    displaySetUID: uid,
    seriesUID: displaySet.SeriesInstanceUID,
    studyUID: displaySet.StudyInstanceUID,
    frames,
    viewSource: source,
    rows: Number(instance.Rows),
    columns: Number(instance.Columns),
    spacing: (instance.PixelSpacing || [1, 1]).map(Number),
  });
  for (const [view, viewportId] of Object.entries(VIEWPORTS)) {
    keepFrame(viewportId, frames[view]);
    const viewport = csViewport(viewportId);
    if (viewport.getCurrentImageIdIndex() !== frames[view]) await viewport.setImageIdIndex(frames[view]);
    labelViewport(viewport, view, orientations[frames[view]]);
    guardFrame(viewport, frames[view]);
  }
  const segmentationId = 'bonescan-' + uid;
  if (!segmentationService.getSegmentation(segmentationId)) {
    const segments = {};
    for (const [index, segment] of Object.entries(SEGMENTS)) segments[index] = { label: segment.label, active: index === '1' };
    await segmentationService.createLabelmapForDisplaySet(displaySet, { segmentationId, label: 'bonescan', segments });
  }
  for (const viewportId of Object.values(VIEWPORTS)) {
    const present = segmentationService.getSegmentationRepresentations(viewportId, { segmentationId }) || [];
    if (!present.length) await segmentationService.addSegmentationRepresentation(viewportId, { segmentationId });
    for (const [index, segment] of Object.entries(SEGMENTS)) {
      segmentationService.setSegmentColor(viewportId, segmentationId, Number(index), segment.color);
    }
  }
  segmentationService.setActiveSegment(segmentationId, 1);
  state.segmentationId = segmentationId;
  setBrushRadius(config().brushRadiusMm || 6);
  state.ready = true;
  state.timings.viewerReadyMs = Math.round(performance.now() - modeEnteredAt);
  render();
  return true;
}

/* OHIF re-applies the hanging protocol's initial image (frame 0 or 1 there) when it re-renders a
 * viewport (e.g. when a segmentation is added): make it the frame of the view instead. */
function keepFrame(viewportId, index) {
  const { cornerstoneViewportService, viewportGridService } = services();
  const options = { index };
  const info = cornerstoneViewportService.getViewportInfo?.(viewportId);
  if (info?.viewportOptions) info.viewportOptions.initialImageOptions = options;
  const gridViewport = viewportGridService.getState().viewports?.get?.(viewportId);
  if (gridViewport?.viewportOptions) gridViewport.viewportOptions.initialImageOptions = options;
}

/* Puts a viewport back on its view's frame when OHIF re-set its stack (polled while the mode is open). */
function holdFrames() {
  for (const [view, viewportId] of Object.entries(VIEWPORTS)) {
    const viewport = csViewport(viewportId);
    if (!viewport?.getImageIds?.().length || viewport.getCurrentImageIdIndex() === state.frames[view]) continue;
    keepFrame(viewportId, state.frames[view]);
    if (viewport.element.__bonescanGuard) viewport.element.__bonescanGuard.index = state.frames[view];
    else guardFrame(viewport, state.frames[view]);
    viewport.setImageIdIndex(state.frames[view]).catch(error => console.warn('bonescan: frame', error));
  }
}

/** The frame index each viewport shows now (for tests). */
export function shownFrames() {
  const out = {};
  for (const [view, viewportId] of Object.entries(VIEWPORTS)) out[view] = csViewport(viewportId)?.getCurrentImageIdIndex();
  return out;
}

function guardFrame(viewport, index) {
  if (viewport.element.__bonescanGuard) {
    viewport.element.__bonescanGuard.index = index;
    return;
  }
  const { Enums } = libs().cornerstone;
  const guard = { index };
  viewport.element.__bonescanGuard = guard;
  viewport.element.addEventListener(Enums.Events.STACK_NEW_IMAGE, () => {
    if (viewport.getCurrentImageIdIndex() !== guard.index) viewport.setImageIdIndex(guard.index);
  });
}

// ---------------------------------------------------------------------------------------------
// The labelmap: one derived image per NM frame, in the display set's image order.
function labelmapImageIds() {
  const segmentation = services().segmentationService.getSegmentation(state.segmentationId);
  const labelmap = segmentation?.representationData?.Labelmap;
  if (labelmap?.imageIds?.length) return labelmap.imageIds;
  const layer = labelmap?.labelmaps && Object.values(labelmap.labelmaps)[0];
  return layer?.imageIds || [];
}
function scalars(imageId) {
  const image = libs().cornerstone.cache.getImage(imageId);
  return image.voxelManager?.getScalarData?.() || image.getPixelData();
}
/** Label values per display-set frame (Uint8Array rows*columns each, row-major). */
export function labelFrames() {
  return labelmapImageIds().map(id => Uint8Array.from(scalars(id)));
}
function labelsModified() {
  const { cornerstoneTools } = libs();
  cornerstoneTools.segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(state.segmentationId);
  for (const viewportId of Object.values(VIEWPORTS)) csViewport(viewportId)?.render();
}
export function setLabelFrames(frames) {
  labelmapImageIds().forEach((id, k) => {
    const target = scalars(id);
    target.set(frames[k]);
  });
  labelsModified();
}

// ---------------------------------------------------------------------------------------------
// NIfTI in MONAI Label's layout: (columns, rows, frames), i.e. the frames back to back, row-major.
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

// ---------------------------------------------------------------------------------------------
// Server calls.
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
  render();
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
  render();
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

// ---------------------------------------------------------------------------------------------
// Tools.
export function setTool(name) {
  const { toolGroupService } = services();
  const { cornerstoneTools } = libs();
  const group = toolGroupService.getToolGroup('bonescan');
  const primary = [{ mouseButton: cornerstoneTools.Enums.MouseBindings.Primary }];
  for (const tool of ['WindowLevel', 'CircularBrush', 'CircularEraser']) {
    if (tool !== name) group.setToolPassive(tool);
  }
  group.setToolActive(name, { bindings: primary });
  state.tool = name;
  render();
}
export function setBrushRadius(mm) {
  libs().cornerstoneTools.utilities.segmentation.setBrushSizeForToolGroup('bonescan', Number(mm));
  state.brushRadiusMm = Number(mm);
}
export function setSegment(index) {
  services().segmentationService.setActiveSegment(state.segmentationId, Number(index));
  state.segment = Number(index);
  render();
}
/** Page coordinates of the centre of image pixel (row, column) of a view (for tests and tools). */
export function pixelToPage(view, row, column) {
  const { cornerstone } = libs();
  const viewport = csViewport(VIEWPORTS[view]);
  const world = cornerstone.utilities.imageToWorldCoords(viewport.getCurrentImageId(), [column + 0.5, row + 0.5]);
  const [x, y] = viewport.worldToCanvas(world);
  const box = viewport.canvas.getBoundingClientRect();
  return { x: box.left + x, y: box.top + y };
}

// ---------------------------------------------------------------------------------------------
// The panel (plain DOM).
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}
function say(text, kind = 'info') {
  state.messages = [{ text, kind }];
  render();
}
async function act(label, fn) {
  state.busy = label;
  say(`${label}…`);
  try {
    await fn();
    state.busy = false;
    say(`${label}: done`);
  } catch (error) {
    state.busy = false;
    console.error('bonescan', label, error);
    say(`${label} failed: ${error.message}`, 'error');
  }
}

let models = null;
async function loadModels() {
  try {
    const info = await (await answer(await fetch(api('/info/')))).json();
    const untrained = new Set(info.bonescan?.untrained_models || []);
    models = Object.keys(info.models || {}).map(name => ({ name, type: info.models[name].type, trained: !untrained.has(name) }));
  } catch (error) {
    models = [];
    say(`server: ${error.message}`, 'error');
  }
  render();
}

function resultView() {
  const r = state.result;
  if (!r) return null;
  const probability = r.metastasis_probability ?? r.classifier_probability;
  const lesions = r.lesions || [];
  return el(
    'div',
    { class: 'bs-result', 'data-testid': 'bonescan-result' },
    el('div', {}, `Metastasis probability: ${probability != null ? Number(probability).toFixed(3) : '–'}`),
    el('div', {}, `Metastatic: ${r.metastatic === true ? 'yes' : r.metastatic === false ? 'no' : '–'}`),
    el('div', {}, `BSTBI: ${r.bstbi != null ? Number(r.bstbi).toFixed(3) : '–'}`),
    el('div', {}, `Lesions: ${lesions.length}`),
    lesions.length
      ? el(
          'table',
          { class: 'bs-lesions' },
          el('tr', {}, el('th', {}, 'view'), el('th', { title: 'centroid in the server\'s canonical layout: posterior mirrored to match the anterior view' }, 'row, col*'), el('th', {}, 'cm²'), el('th', {}, 'uptake')),
          lesions.slice(0, 50).map(l =>
            el(
              'tr',
              {},
              el('td', {}, SHORT[l.view] || l.view),
              el('td', {}, (l.centroid_rc || []).join(', ')),
              el('td', {}, String(l.area_cm2 ?? '')),
              el('td', {}, String(l.mean_uptake_ratio ?? ''))
            )
          )
        )
      : null
  );
}

function render() {
  if (!root) return;
  const disabled = !state.ready || !!state.busy;
  const button = (label, onclick, extra = {}) => el('button', { class: 'bs-button', onclick, disabled, ...extra }, label);
  const toolButton = (label, tool) =>
    button(label, () => setTool(tool), { class: 'bs-button' + (state.tool === tool ? ' bs-active' : ''), 'data-tool': tool });
  const answerValue = root.dataset.metastatic;
  const children = [
    el('h3', {}, 'Bone scan'),
    el('div', { class: 'bs-small' }, state.ready ? `Views from ${state.viewSource}` : 'Waiting for the study…'),
    el('h4', {}, 'Models'),
    el('ul', { class: 'bs-small' }, (models || []).map(m => el('li', {}, `${m.name} (${m.type})${m.trained ? '' : ' – not trained'}`))),
    button('Run bstbi', () => act('bstbi', () => runModel('bstbi')), { 'data-testid': 'bonescan-run' }),
    resultView(),
    el('h4', {}, 'Edit'),
    el('div', {}, toolButton('W/L', 'WindowLevel'), toolButton('Brush', 'CircularBrush'), toolButton('Eraser', 'CircularEraser')),
    el(
      'div',
      {},
      el(
        'select',
        { onchange: e => setSegment(e.target.value), disabled },
        Object.entries(SEGMENTS).map(([i, s]) => el('option', { value: i, selected: Number(i) === (state.segment || 1) }, s.label))
      ),
      el('label', { class: 'bs-small' }, ' radius mm '),
      el('input', {
        type: 'number', min: '1', max: '50', step: '0.5', value: String(state.brushRadiusMm || 6), style: 'width:4em',
        onchange: e => setBrushRadius(e.target.value),
      })
    ),
    el('h4', {}, 'Save'),
    el(
      'div',
      {},
      'Metastatic: ',
      ['yes', 'no'].map(v =>
        el('label', {}, el('input', {
          type: 'radio', name: 'bs-metastatic', value: v, checked: answerValue === v,
          onchange: () => { root.dataset.metastatic = v; render(); },
        }), ` ${v} `)
      )
    ),
    el('input', { type: 'text', placeholder: 'annotator', value: root.dataset.annotator || '', oninput: e => (root.dataset.annotator = e.target.value) }),
    button('Load saved label', () => act('load saved label', loadSavedLabel), { 'data-testid': 'bonescan-load' }),
    button('Save final label', () => act('save', () => saveLabel(answerValue === 'yes' ? true : answerValue === 'no' ? false : null, root.dataset.annotator || '')), {
      'data-testid': 'bonescan-save',
    }),
    el('h4', {}, 'Next study'),
    el('select', { id: 'bs-strategy', disabled, onchange: e => (root.dataset.strategy = e.target.value) }, STRATEGIES.map(s => el('option', { value: s, selected: s === (root.dataset.strategy || 'random') }, s))),
    button('Next study', () => act('next study', () => nextStudy(root.querySelector('#bs-strategy').value)), { 'data-testid': 'bonescan-next' }),
    el('div', { class: 'bs-messages' }, state.messages.map(m => el('div', { class: 'bs-' + m.kind }, m.text))),
  ];
  root.replaceChildren(...children.filter(child => child !== null && child !== undefined));
}

function panelRoot() {
  if (!root) {
    root = el('div', { class: 'bonescan-panel', 'data-testid': 'bonescan-panel' });
    render();
  }
  return root;
}
/* Mounts our DOM into the host div of PanelComponent (polled while the mode is open: React 18.3
 * did not call a ref callback of a hand-made element object here). */
function mountPanel() {
  const host = document.querySelector('[data-bonescan-panel-host]');
  if (host && host.firstChild !== panelRoot()) host.replaceChildren(panelRoot());
}
/* The panel module's component: a React 18 element (plain object) for an empty host div. */
export function PanelComponent() {
  return {
    $$typeof: REACT_ELEMENT, type: 'div', key: null, ref: null, _owner: null, _store: {},
    props: { 'data-bonescan-panel-host': '', style: { height: '100%', overflow: 'auto' } },
  };
}

const CSS = `
.ViewportOrientationMarkers { display: none !important; }
.bonescan-overlay { position: absolute; z-index: 20; color: #ffe066; font: bold 15px sans-serif; pointer-events: none; text-shadow: 0 0 3px #000; }
.bonescan-panel { padding: 8px; color: #ddd; font: 13px sans-serif; }
.bonescan-panel h3 { font-size: 16px; margin: 4px 0 8px; color: #fff; }
.bonescan-panel h4 { font-size: 13px; margin: 12px 0 4px; color: #9cf; }
.bonescan-panel .bs-small { font-size: 11px; color: #aaa; }
.bonescan-panel .bs-button { background: #234; color: #fff; border: 1px solid #456; border-radius: 4px; padding: 3px 8px; margin: 2px; cursor: pointer; }
.bonescan-panel .bs-button:disabled { opacity: .5; cursor: default; }
.bonescan-panel .bs-active { background: #2a6; }
.bonescan-panel select, .bonescan-panel input[type=text], .bonescan-panel input[type=number] { background: #111; color: #ddd; border: 1px solid #456; margin: 2px; }
.bonescan-panel .bs-lesions { font-size: 11px; border-collapse: collapse; margin-top: 4px; }
.bonescan-panel .bs-lesions td, .bonescan-panel .bs-lesions th { padding: 1px 4px; border-bottom: 1px solid #333; }
.bonescan-panel .bs-error { color: #f88; }
.bonescan-panel .bs-result { margin: 6px 0; padding: 4px; border: 1px solid #345; }
`;

export function enterMode() {
  modeEnteredAt = performance.now();
  Object.assign(state, { ready: false, segmentationId: null, result: null, saved: null, tool: 'WindowLevel', messages: [] });
  if (!document.getElementById('bonescan-css')) {
    document.head.append(el('style', { id: 'bonescan-css' }, CSS));
  }
  loadModels();
  let running = false;
  timer = setInterval(async () => {
    mountPanel();
    if (state.ready) holdFrames();
    if (state.ready || running) return;
    running = true;
    try {
      await setUp();
    } catch (error) {
      console.warn('bonescan: set-up not done yet', error);
    } finally {
      running = false;
    }
  }, 300);
  window.bonescan = { state, shownFrames, viewport: csViewport, services, runModel, saveLabel, loadSavedLabel, nextStudy, setTool, setBrushRadius, setSegment, labelFrames, setLabelFrames, pixelToPage, frameViews };
}

export function exitMode() {
  clearInterval(timer);
  timer = null;
  state.ready = false;
}
