/* The two viewports: which frame is which view, their labels and R/L markers, the shared labelmap
 * segmentation and the editing tools. Reads OHIF/cornerstone through context.js. */
import { SEGMENTS, SHORT, VIEWPORTS, changed, config, csViewport, libs, services, state } from './context.js';

// Which frame is which view: DetectorVector -> DetectorInformationSequence -> ViewCodeSequence
// (SNOMED CT, as bonescan/io/views.py reads them on the server).
const VIEW_CODES = { 399321004: 'anterior', 399001007: 'posterior' };

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

export async function setUp(enteredAt) {
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
  state.timings.viewerReadyMs = Math.round(performance.now() - enteredAt);
  changed();
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
export function holdFrames() {
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
  changed();
}
export function setBrushRadius(mm) {
  libs().cornerstoneTools.utilities.segmentation.setBrushSizeForToolGroup('bonescan', Number(mm));
  state.brushRadiusMm = Number(mm);
}
export function setSegment(index) {
  services().segmentationService.setActiveSegment(state.segmentationId, Number(index));
  state.segment = Number(index);
  changed();
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

