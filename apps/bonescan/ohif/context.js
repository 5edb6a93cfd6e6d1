/* What the bonescan modules share: the OHIF services handed over at registration, the server's
 * address, the viewer state and a change signal the panel listens to (no DOM access at import). */

export const SEGMENTS = {
  1: { label: 'metastatic lesion', color: [255, 40, 40, 255] },
  2: { label: 'bladder', color: [255, 210, 0, 255] },
  3: { label: 'bone', color: [40, 140, 255, 255] },
};
export const VIEWPORTS = { anterior: 'bonescan-ant', posterior: 'bonescan-post' };
export const SHORT = { anterior: 'ANT', posterior: 'POST' };

const ctx = {}; // servicesManager, extensionManager, commandsManager
export const state = {
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
const listeners = [];

export function setContext(context) {
  Object.assign(ctx, context);
}
/** Call ``fn`` whenever the state changed (the panel re-renders). */
export function onChange(fn) {
  listeners.push(fn);
}
export function changed() {
  for (const fn of listeners) fn();
}
export function config() {
  return window.config?.bonescan || {};
}
export function api(path) {
  return (config().api || window.location.origin) + path;
}
export function services() {
  return ctx.servicesManager.services;
}
export function libs() {
  return ctx.extensionManager
    .getModuleEntry('@ohif/extension-cornerstone.utilityModule.common')
    .exports.getCornerstoneLibraries();
}
export function csViewport(viewportId) {
  return libs().cornerstone.getEnabledElementByViewportId(viewportId)?.viewport || null;
}
