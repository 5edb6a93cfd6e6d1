/* bonescan's OHIF 3.13.2 configuration, served at /viewer/app-config.js by apps/bonescan/lib/viewer.py.
 * Everything comes from the page's own origin: the viewer (/viewer/), the MONAI Label API (/info/,
 * /infer/..., /datastore/...) and the PACS through our proxy (/bonescan/dicom-web -> --studies URL). */
(function () {
  const origin = window.location.origin;
  const dicomweb = origin + '/bonescan/dicom-web';
  window.config = {
    name: 'bonescan',
    routerBasename: '/viewer',
    // Runtime ES modules (no OHIF build): OHIF's loader import()s any string it does not know.
    extensions: [origin + '/viewer/bonescan/extension.js'],
    modes: [origin + '/viewer/bonescan/mode.js'],
    customizationService: {},
    showStudyList: true,
    maxNumberOfWebWorkers: 2,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: false,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: false,
    groupEnabledModesFirst: true,
    // The first brush stroke on the other view paints at once (instead of only activating it).
    activateViewportBeforeInteraction: false,
    investigationalUseDialog: { option: 'never' },
    maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 10 },
    showErrorDetails: 'always',
    defaultDataSourceName: 'orthanc',
    dataSources: [
      {
        namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
        sourceName: 'orthanc',
        configuration: {
          friendlyName: 'bonescan PACS (Orthanc)',
          name: 'orthanc',
          wadoUriRoot: dicomweb,
          qidoRoot: dicomweb,
          wadoRoot: dicomweb,
          qidoSupportsIncludeField: false,
          supportsReject: false,
          imageRendering: 'wadors',
          thumbnailRendering: 'wadors',
          enableStudyLazyLoad: true,
          supportsFuzzyMatching: false,
          supportsWildcard: true,
          staticWado: false,
          singlepart: 'bulkdata,video',
          dicomUploadEnabled: false,
          bulkDataURI: { enabled: true },
          omitQuotationForMultipartRequest: true,
        },
      },
    ],
    // The bonescan panel reads these (apps/bonescan/ohif/panel.js).
    bonescan: {
      api: origin,
      brushRadiusMm: 6, // 2.4 mm pixels: about 5 pixels diameter either side
    },
  };
})();
