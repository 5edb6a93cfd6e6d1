/* bonescan's OHIF 3.13 extension as a plain ES module: the ANT/POST hanging protocol and the
 * bonescan panel (plain DOM, see panel.js). Its id is used in module references; the mode lists
 * it under its URL (OHIF's loader imports dependency keys it does not know as URLs). */
import { setContext } from './context.js';
import { PanelComponent } from './panel.js';

const VOI_SYNC = { type: 'voi', id: 'bonescan-voi', source: true, target: true, options: { syncColormap: false } };

function viewport(viewportId, index) {
  return {
    viewportOptions: {
      viewportId,
      viewportType: 'stack',
      toolGroupId: 'bonescan',
      allowUnmatchedView: true,
      // The frame is corrected from the DICOM view codes once the metadata is there (panel.js).
      initialImageOptions: { index },
      syncGroups: [VOI_SYNC],
    },
    displaySets: [{ id: 'nm' }],
  };
}

const protocol = {
  id: 'bonescan',
  name: 'Bone scan ANT/POST',
  locked: true,
  protocolMatchingRules: [],
  imageLoadStrategy: 'interleaveTopToBottom',
  displaySetSelectors: {
    nm: {
      seriesMatchingRules: [
        { weight: 10, attribute: 'Modality', constraint: { equals: { value: 'NM' } }, required: true },
        { weight: 5, attribute: 'numImageFrames', constraint: { greaterThan: { value: 1 } } },
      ],
    },
  },
  stages: [
    {
      name: 'ANT/POST',
      viewportStructure: { layoutType: 'grid', properties: { rows: 1, columns: 2 } },
      viewports: [viewport('bonescan-ant', 0), viewport('bonescan-post', 1)],
    },
  ],
};

export default {
  id: '@bonescan/extension',
  preRegistration({ servicesManager, extensionManager, commandsManager }) {
    setContext({ servicesManager, extensionManager, commandsManager });
  },
  getHangingProtocolModule() {
    return [{ name: 'bonescan', protocol }];
  },
  getPanelModule() {
    return [
      {
        name: 'bonescan',
        iconName: 'tab-segmentation',
        iconLabel: 'Bone scan',
        label: 'Bone scan',
        component: PanelComponent,
      },
    ];
  },
};
