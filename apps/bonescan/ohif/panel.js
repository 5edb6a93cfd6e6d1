/* The bonescan panel, plain DOM (the host's React is not reachable from a runtime module; the
 * panel component returns one React 18 element object whose ref mounts our DOM), and the mode's
 * entry and exit. The rest lives beside it: context.js (shared state and OHIF services),
 * viewports.js (frames, labelmap, tools), nifti.js (label files), server.js (server calls).
 * window.bonescan exposes the state and actions (used by tests/test_viewer_browser.py). */
import { SEGMENTS, SHORT, csViewport, onChange, services, state } from './context.js';
import { loadSavedLabel, nextStudy, runModel, saveLabel, serverInfo } from './server.js';
import {
  frameViews, holdFrames, labelFrames, pixelToPage, setBrushRadius, setLabelFrames, setSegment, setTool, setUp, shownFrames,
} from './viewports.js';

const REACT_ELEMENT = Symbol.for('react.element');
let timer = null;
let root = null;

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
let strategies = [];
async function loadInfo() {
  try {
    ({ models, strategies } = await serverInfo());
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

onChange(render);

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
    el('select', { id: 'bs-strategy', disabled, onchange: e => (root.dataset.strategy = e.target.value) }, strategies.map(s => el('option', { value: s, selected: s === (root.dataset.strategy || 'random') }, s))),
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
  const enteredAt = performance.now();
  Object.assign(state, { ready: false, segmentationId: null, result: null, saved: null, tool: 'WindowLevel', messages: [] });
  if (!document.getElementById('bonescan-css')) {
    document.head.append(el('style', { id: 'bonescan-css' }, CSS));
  }
  loadInfo();
  let running = false;
  timer = setInterval(async () => {
    mountPanel();
    if (state.ready) holdFrames();
    if (state.ready || running) return;
    running = true;
    try {
      await setUp(enteredAt);
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
