/** @type {AppTypes.Config} */
// OHIF Viewer 3.13 configuration for dicom-node's outputs: one DICOMweb data source at /dicom-web
// on the viewer's own origin, which deploy/ohif/serve.py proxies to Orthanc's DICOMweb plugin
// (no authentication, no CORS). Open a study directly:
//   http://127.0.0.1:3000/viewer?StudyInstanceUIDs=<Study Instance UID>
// (the study list at / works too). Served in place of dist/app-config.js by serve.py.
const dicomWeb = window.location.origin + '/dicom-web';

window.config = {
  name: 'dicom-node/deploy/ohif/app-config.js',
  routerBasename: '/',
  extensions: [],
  modes: [],
  // No guided tour (Shepherd.js pop-ups over the viewport on the first visit).
  customizationService: { 'ohif.tours': { $set: [] } },
  showStudyList: true,
  maxNumberOfWebWorkers: 3,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: true,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  // No "investigational use" dialog: dicom-node's outputs carry their own research-use notice.
  investigationalUseDialog: { option: 'never' },
  showErrorDetails: 'always',
  defaultDataSourceName: 'orthanc',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'orthanc',
      configuration: {
        friendlyName: 'Orthanc (DICOMweb plugin) via serve.py',
        name: 'orthanc',
        wadoUriRoot: dicomWeb,
        qidoRoot: dicomWeb,
        wadoRoot: dicomWeb,
        qidoSupportsIncludeField: false,
        supportsReject: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        omitQuotationForMultipartRequest: true,
        bulkDataURI: { enabled: true },
      },
    },
  ],
};
