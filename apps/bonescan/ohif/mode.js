/* "Bone scan" mode for OHIF 3.13 as a plain ES module (no build), loaded from app-config.js.
 * Derived from the bundled segmentation mode: its toolbar and segmentation services, our layout
 * (study series on the left, the bonescan panel on the right), our hanging protocol (ANT and POST
 * of the NM instance side by side) and our tool group. See README.md for the OHIF internals used. */
import { enterMode, exitMode } from './panel.js';

const EXTENSION_URL = new URL('./extension.js', import.meta.url).href;
const EXT = '@bonescan/extension';

function isNM({ modalities }) {
  const list = (modalities || '').split('\\');
  return list.includes('NM')
    ? { valid: true, description: 'whole-body bone scan (NM)' }
    : { valid: false, description: 'The Bone scan mode needs an NM study' };
}

/* Tool group 'bonescan': W/L, pan, zoom; brush and eraser passive until chosen in the panel.
 * No stack scrolling: each viewport keeps its frame (ANT or POST). */
function initToolGroups({ extensionManager, toolGroupService }) {
  const { toolNames, Enums } = extensionManager.getModuleEntry(
    '@ohif/extension-cornerstone.utilityModule.tools'
  ).exports;
  const brush = (toolName, strategy) => ({
    toolName,
    parentTool: 'Brush',
    configuration: { activeStrategy: strategy, minRadius: 0.5, maxRadius: 99.5 },
  });
  toolGroupService.createToolGroupAndAddTools('bonescan', {
    active: [
      { toolName: toolNames.WindowLevel, bindings: [{ mouseButton: Enums.MouseBindings.Primary }] },
      { toolName: toolNames.Pan, bindings: [{ mouseButton: Enums.MouseBindings.Auxiliary }] },
      { toolName: toolNames.Zoom, bindings: [{ mouseButton: Enums.MouseBindings.Secondary }] },
    ],
    passive: [brush('CircularBrush', 'FILL_INSIDE_CIRCLE'), brush('CircularEraser', 'ERASE_INSIDE_CIRCLE')],
  });
}

export default {
  id: '@bonescan/mode',
  async modeFactory({ loadModules }) {
    const [segmentationMode] = await loadModules(['@ohif/mode-segmentation']);
    const base = segmentationMode.modeInstance;
    const route = base.routes[0];
    const layout = {
      ...route.layoutInstance,
      props: {
        ...route.layoutInstance.props,
        leftPanels: ['@ohif/extension-default.panelModule.seriesList'],
        leftPanelClosed: true,
        rightPanels: [`${EXT}.panelModule.bonescan`],
        rightPanelClosed: false,
      },
    };
    return {
      ...base,
      id: '@bonescan/mode',
      routeName: 'bonescan',
      displayName: 'Bone scan',
      hide: false,
      isValidMode: isNM,
      hangingProtocol: `bonescan`,
      initToolGroups,
      toolbarButtons: [{ $reference: 'cornerstone.toolbarButtons' }],
      toolbarSections: [{ $reference: 'cornerstone.toolbarSections' }],
      toolGroupAdditions: {},
      extensions: { ...base.extensions, [EXTENSION_URL]: '^0.1.0' },
      routes: [{ ...route, path: 'bonescan', layoutInstance: layout }],
      onModeEnter(context) {
        base.onModeEnter.call(this, context);
        enterMode(context);
      },
      onModeExit(context) {
        exitMode(context);
        base.onModeExit.call(this, context);
      },
    };
  },
  extensionDependencies: { [EXTENSION_URL]: '^0.1.0' },
};
