// Page logic of `attn serve`: analyses an image through the JSON API and draws its attention maps on canvases.
'use strict';

// ------------------------------------------------------------------ colormaps

const clamp01 = (x) => Math.min(1, Math.max(0, x));

// A colormap through evenly spaced '#rrggbb' control points, linearly interpolated.
function controlPointColormap(hexColors) {
  const points = hexColors.map((hex) => [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16) / 255));
  return (t) => {
    const position = t * (points.length - 1);
    const lower = Math.min(Math.floor(position), points.length - 2);
    const fraction = position - lower;
    return points[lower].map((value, channel) => value + (points[lower + 1][channel] - value) * fraction);
  };
}

// The polynomial with these coefficients, constant term first (Horner's scheme).
const polynomial = (coefficients) => (t) => coefficients.reduceRight((sum, coefficient) => sum * t + coefficient, 0);

// Google's Turbo through the degree-5 polynomial fit Anton Mikhailov published with it (2019).
const TURBO_CHANNELS = [
  polynomial([0.13572138, 4.6153926, -42.66032258, 132.13108234, -152.94239396, 59.28637943]),
  polynomial([0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604]),
  polynomial([0.1066733, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973]),
];

// Each maps t in [0, 1] to [r, g, b] in [0, 1]. The server renders with OpenCV's tables, which
// these follow closely enough for a preview; the downloaded PNG is the server's exact rendering.
const COLORMAPS = {
  // MATLAB's jet: red, green and blue ramps peaking at t = 3/4, 1/2 and 1/4.
  jet: (t) => [3, 2, 1].map((peak) => clamp01(1.5 - Math.abs(4 * t - peak))),
  // matplotlib's viridis and inferno at t = 0, 0.1, ..., 1 (their published 11-colour samples).
  viridis: controlPointColormap(['#440154', '#482475', '#414487', '#355f8d', '#2a788e', '#21918c',
    '#22a884', '#44bf70', '#7ad151', '#bddf26', '#fde725']),
  inferno: controlPointColormap(['#000004', '#160b39', '#420a68', '#6a176e', '#932667', '#bc3754',
    '#dd513a', '#f37819', '#fca50a', '#f6d746', '#fcffa4']),
  turbo: (t) => TURBO_CHANNELS.map((channel) => clamp01(channel(t))),
  // MATLAB's hot, approximately: red, then green, then blue rise over successive thirds.
  hot: (t) => [0, 1, 2].map((third) => clamp01(3 * t - third)),
  gray: (t) => [t, t, t],
};

const colormapTables = new Map();

// 256 RGB entries of a colormap, built on first use: colouring a grid is then one lookup a cell.
function colormapTable(name) {
  if (!colormapTables.has(name)) {
    const table = new Uint8ClampedArray(256 * 3);
    for (let level = 0; level < 256; level++) {
      table.set(COLORMAPS[name](level / 255).map((value) => value * 255), level * 3);
    }
    colormapTables.set(name, table);
  }
  return colormapTables.get(name);
}

// ------------------------------------------------------------------ drawing

// The grid min-max normalised (as the server's renderer does) and coloured, one pixel a cell.
function colouredGrid(grid, colormap) {
  const values = grid.flat();
  const low = Math.min(...values);
  const range = Math.max(...values) - low;
  const table = colormapTable(colormap);
  const pixels = new ImageData(grid[0].length, grid.length);
  values.forEach((value, cell) => {
    const level = range > 0 ? Math.round(((value - low) / range) * 255) : 0;
    pixels.data.set(table.subarray(level * 3, level * 3 + 3), cell * 4);
    pixels.data[cell * 4 + 3] = 255;
  });
  const canvas = document.createElement('canvas');
  canvas.width = pixels.width;
  canvas.height = pixels.height;
  canvas.getContext('2d').putImageData(pixels, 0, 0);
  return canvas;
}

// Draws the image over the whole canvas and, when given, the overlay's map blended into its crop
// box (image pixels): the model saw only that box, so the rest of the image stays as it was.
function drawOverlay(canvas, image, imageSize, overlay, look) {
  const context = canvas.getContext('2d');
  const scaleX = canvas.width / imageSize.width;
  const scaleY = canvas.height / imageSize.height;
  context.globalAlpha = 1;
  context.imageSmoothingEnabled = scaleX < 2; // small images such as 28x28 items stay crisp
  context.drawImage(image, 0, 0, canvas.width, canvas.height);
  if (!overlay) return;
  const {x, y, width, height} = overlay.crop;
  const box = {x: x * scaleX, y: y * scaleY, width: width * scaleX, height: height * scaleY};
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = 'high';
  context.globalAlpha = look.alpha;
  context.drawImage(colouredGrid(overlay.grid, look.colormap), box.x, box.y, box.width, box.height);
  context.globalAlpha = 1;
  if (overlay.cell) outlineCell(context, box, overlay.grid, overlay.cell);
}

// Marks a patch query's cell, white around black so it shows on any colour.
function outlineCell(context, box, grid, [row, col]) {
  const cellWidth = box.width / grid[0].length;
  const cellHeight = box.height / grid.length;
  const lineWidth = Math.max(1, box.width / 250);
  for (const [colour, widthFactor] of [['#fff', 3], ['#000', 1]]) {
    context.strokeStyle = colour;
    context.lineWidth = lineWidth * widthFactor;
    context.strokeRect(box.x + col * cellWidth, box.y + row * cellHeight, cellWidth, cellHeight);
  }
}

// Gives the canvas the image's aspect ratio, `longSide` CSS pixels on its longer side at the
// screen's resolution (CSS may still shrink it).
function fitCanvas(canvas, imageSize, longSide) {
  const scale = (longSide * window.devicePixelRatio) / Math.max(imageSize.width, imageSize.height);
  canvas.width = Math.max(1, Math.round(imageSize.width * scale));
  canvas.height = Math.max(1, Math.round(imageSize.height * scale));
}

// ------------------------------------------------------------------ page state

const MAIN_VIEW_SIZE = 512;
const THUMBNAIL_SIZE = 96;
const DISCARD_DEBOUNCE_MS = 250;

// The parameters each method's map depends on, in the order they appear in its query.
const MAP_PARAMETERS = {
  rollout: ['fusion', 'discard'],
  'grad-rollout': ['class', 'discard'],
  relevance: ['class'],
  gradcam: ['class', 'layer'],
  cls: ['layer', 'head', 'fusion'],
  patch: ['cell', 'layer', 'head', 'fusion'],
  'patch-rollout': ['cell', 'fusion', 'discard'],
};
const CLASS_METHODS = new Set(['grad-rollout', 'relevance', 'gradcam']);
// The maps an analysis brings: the first view and the thumbnails. Class-specific maps need a
// backward pass (most of a ViT-B/16 analysis' time) and come when a class is clicked.
const FIRST_MAPS = 'maps=rollout,cls';
const PATCH_METHODS = new Set(['patch', 'patch-rollout']);
const FUSED_HEADS = '-1';

// Every element with an id, under its id in camelCase: #main-canvas is elements.mainCanvas.
const elements = Object.fromEntries([...document.querySelectorAll('[id]')]
  .map((node) => [node.id.replace(/-(\w)/g, (_, letter) => letter.toUpperCase()), node]));
const WORD_HINT = elements.wordInfo.textContent;

const state = {
  analysis: null,
  image: null, // the analysed image as the browser decoded it
  uploadUrl: null, // object URL of the uploaded file, revoked when replaced
  view: null, // the map on the main canvas: {method, params, grid, crop, cell, title}
  wordView: null, // a caption word's map, shown instead of `view` while the pointer is on the word
  selectedClass: null, // the class grad-rollout, relevance and gradcam explain
  patchCell: null, // [row, col] of the patch query
  mapRequests: new Map(), // /api/map URL -> promise of its JSON: a view seen before costs nothing
  latestMapRequest: 0, // a map is shown only if no other was asked for after it
  latestAnalysis: 0, // likewise for analyses
  pendingRequests: 0,
};

// What the browser test reads: the last analysis, the map on show and the last API error.
window.attnState = {analysis: null, currentMap: null, lastError: null};

// ------------------------------------------------------------------ small helpers

function element(tag, properties = {}, ...children) {
  const node = Object.assign(document.createElement(tag), properties);
  node.append(...children);
  return node;
}

const percent = (probability) => `${(probability * 100).toFixed(1)}%`;
const range = (count) => Array.from({length: count}, (_, index) => index);
const sameCell = (a, b) => a !== null && b !== null && a[0] === b[0] && a[1] === b[1];

function debounce(action, delayMs) {
  let timer;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(action, delayMs);
  };
}

function setStatus(message, isError = false) {
  elements.status.textContent = message;
  elements.status.classList.toggle('error', isError);
}

function reportError(error) {
  window.attnState.lastError = error.message;
  setStatus(error.message, true);
}

function changePendingRequests(change) {
  state.pendingRequests += change;
  elements.busy.hidden = state.pendingRequests === 0;
  elements.layout.setAttribute('aria-busy', String(state.pendingRequests > 0));
}

// Fetches JSON; an error status becomes an Error with the API's {"error": ...} message. A busy
// server (503) says when to come back: the request is sent again, up to BUSY_RETRIES times.
const BUSY_RETRIES = 3;
async function fetchJson(url, options) {
  changePendingRequests(+1);
  try {
    let response = await fetch(url, options);
    for (let retry = 0; response.status === 503 && retry < BUSY_RETRIES; retry++) {
      const seconds = Number(response.headers.get('Retry-After')) || 2;
      setStatus(`the server is busy: trying again in ${seconds} s`);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      response = await fetch(url, options);
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new Error(body?.error ?? `${url}: ${response.status} ${response.statusText}`);
    return body;
  } finally {
    changePendingRequests(-1);
  }
}

function loadImage(source) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = reject;
    image.src = source;
  });
}

// ------------------------------------------------------------------ analysis

async function listImages() {
  try {
    const {images} = await fetchJson('api/images');
    elements.images.replaceChildren(...images.map(listedImageItem));
  } catch (error) {
    reportError(error);
  }
}

function listedImageItem({index, name}) {
  const thumbnail = element('img', {loading: 'lazy', alt: '', src: `api/images/${index}`});
  const fileName = name.slice(name.lastIndexOf('/') + 1); // the folder is in the tooltip
  const button = element('button', {type: 'button', title: `Analyse ${name}`}, thumbnail, fileName);
  button.addEventListener('click', () => analyze(`api/analyze?image=${index}&${FIRST_MAPS}`, {method: 'POST'}, thumbnail.src));
  return element('li', {}, button);
}

function analyzeFile(file) {
  if (!file) return;
  if (state.uploadUrl) URL.revokeObjectURL(state.uploadUrl);
  state.uploadUrl = URL.createObjectURL(file);
  const headers = {'Content-Type': file.type || 'application/octet-stream'};
  analyze(`api/analyze?${FIRST_MAPS}`, {method: 'POST', body: file, headers}, state.uploadUrl);
}

// Posts an image for analysis while the browser decodes it for display; only the latest
// analysis asked for is shown. `body[data-ready]` tells tests when it is.
async function analyze(url, options, imageSource) {
  const request = ++state.latestAnalysis;
  delete document.body.dataset.ready;
  setStatus('Analysing…');
  const decoded = loadImage(imageSource).catch(() => null);
  try {
    const analysis = await fetchJson(url, options);
    const image = await decoded;
    if (request !== state.latestAnalysis) return;
    if (!image) throw new Error(`${analysis.name}: analysed, but this browser cannot display the image`);
    await showAnalysis(analysis, image);
    document.body.dataset.ready = '1';
  } catch (error) {
    if (request === state.latestAnalysis) reportError(error);
  }
}

async function showAnalysis(analysis, image) {
  Object.assign(state, {analysis, image, view: null, wordView: null, patchCell: null});
  state.selectedClass = analysis.predictions[0]?.index ?? null;
  state.mapRequests.clear();
  rememberAnalysisMaps(analysis);
  Object.assign(window.attnState, {analysis, lastError: null});
  fillLayerAndHeadOptions(analysis);
  fitCanvas(elements.mainCanvas, analysis, MAIN_VIEW_SIZE);
  renderPredictions(analysis.predictions);
  renderCaption(analysis.caption);
  renderThumbnails(analysis);
  setStatus(`${analysis.name}: ${analysis.width}×${analysis.height}, ${analysis.model.split('/').pop()}`);
  elements.timing.textContent = `analysed in ${analysis.timing_ms.total.toFixed(1)} ms`;
  await showSelectedMap();
}

// Files the maps an analysis brings along under the URLs that would fetch them.
function rememberAnalysisMaps({maps, heads, predictions}) {
  const remember = (query, map) => state.mapRequests.set(mapUrl(query), Promise.resolve(map));
  remember(mapQuery('rollout', {fusion: 'mean', discard: 0}), maps.rollout);
  if (maps['grad-rollout']) {
    remember(mapQuery('grad-rollout', {class: predictions[0]?.index, discard: 0}), maps['grad-rollout']);
  }
  maps.cls.maps.forEach((grid, index) => {
    const single = {...maps.cls, maps: [grid], titles: []};
    remember(mapQuery('cls', {layer: Math.floor(index / heads), head: index % heads}), single);
  });
}

// Refills a select, keeping its choice when the new options still offer it.
function fillSelect(select, options, preferred) {
  const previous = select.value;
  select.replaceChildren(...options.map(([value, text]) => new Option(text, value)));
  select.value = options.some(([value]) => value === previous) ? previous : preferred;
}

function fillLayerAndHeadOptions({layers, heads}) {
  const lastLayer = String(layers - 1);
  fillSelect(elements.layer, range(layers).map((layer) => [String(layer), String(layer)]), lastLayer);
  const headOptions = range(heads).map((head) => [String(head), String(head)]);
  fillSelect(elements.head, [[FUSED_HEADS, 'all, fused'], ...headOptions], FUSED_HEADS);
}

// ------------------------------------------------------------------ maps

const mapUrl = (query) => `api/map?${query}`;

const selectedMethod = () =>
  elements.method.value === 'patch' && elements.rolledOut.checked ? 'patch-rollout' : elements.method.value;

function currentSettings() {
  return {
    fusion: elements.fusion.value,
    discard: elements.discard.value,
    class: state.selectedClass,
    layer: elements.layer.value,
    head: elements.head.value,
    cell: state.patchCell,
  };
}

// The /api/map query of a method's map: the cache key, and the base of the overlay's query.
function mapQuery(method, settings) {
  const query = new URLSearchParams({id: state.analysis.id, method});
  const singleHead = MAP_PARAMETERS[method].includes('head') && String(settings.head) !== FUSED_HEADS;
  for (const name of MAP_PARAMETERS[method]) {
    if (name === 'fusion' && singleHead) continue; // one head needs no fusing
    query.set(name, String(settings[name]));
  }
  return query;
}

function requestMap(query) {
  const url = mapUrl(query);
  if (!state.mapRequests.has(url)) {
    const response = fetchJson(url);
    response.catch(() => state.mapRequests.delete(url)); // a failure is asked again next time
    state.mapRequests.set(url, response);
  }
  return state.mapRequests.get(url);
}

// "grad-rollout (class 9, discard 0) · Ankle boot"
function describeMap(method, query, map) {
  const details = [...query]
    .filter(([name]) => name !== 'id' && name !== 'method')
    .map(([name, value]) => (name === 'head' && value === FUSED_HEADS ? 'heads fused' : `${name} ${value}`));
  const detailText = details.length ? ` (${details.join(', ')})` : '';
  const explained = CLASS_METHODS.has(method) && map.label ? ` · ${map.label}` : ''; // the others explain no class
  return `${method}${detailText}${explained}`;
}

// Shows a method's map from the cache or the server; a response overtaken by a later request is dropped.
async function showMap(method, settings) {
  const query = mapQuery(method, settings);
  const request = ++state.latestMapRequest;
  try {
    const map = await requestMap(query);
    if (request !== state.latestMapRequest) return;
    state.view = {
      method,
      params: Object.fromEntries(query),
      grid: map.maps[0],
      crop: state.analysis.crop,
      cell: PATCH_METHODS.has(method) ? settings.cell : null,
      title: describeMap(method, query, map),
    };
    window.attnState.lastError = null;
    render();
  } catch (error) {
    if (request === state.latestMapRequest) reportError(error);
  }
}

// Shows the map the controls describe; patch maps start at the centre cell.
function showSelectedMap() {
  if (!state.analysis) return Promise.resolve();
  const method = selectedMethod();
  if (PATCH_METHODS.has(method) && !state.patchCell) {
    const [rows, cols] = state.analysis.grid;
    state.patchCell = [Math.floor(rows / 2), Math.floor(cols / 2)];
  }
  return showMap(method, currentSettings());
}

function updateControlVisibility() {
  const method = selectedMethod();
  for (const control of document.querySelectorAll('[data-methods]')) {
    control.hidden = !control.dataset.methods.split(' ').includes(method);
  }
}

// ------------------------------------------------------------------ rendering

const currentLook = () => ({colormap: elements.colormap.value, alpha: Number(elements.alpha.value)});

// Redraws the main canvas and keeps everything that describes the shown map in step with it.
function render() {
  if (!state.image) return;
  const shown = state.wordView ?? state.view;
  drawOverlay(elements.mainCanvas, state.image, state.analysis, shown, currentLook());
  elements.mapTitle.textContent = shown?.title ?? '';
  window.attnState.currentMap = shown && {method: shown.method, grid: shown.grid, params: shown.params};
  updateDownloadLink();
  markSelections();
}

function updateDownloadLink() {
  if (!state.view) {
    elements.download.removeAttribute('href');
    return;
  }
  const {colormap, alpha} = currentLook();
  // While a caption word's map is shown, the download is the caption's panel of word maps.
  const params = state.wordView ? {id: state.analysis.id, method: 'caption'} : state.view.params;
  // upscale: images smaller than the on-page view (28x28 items) come out that large.
  const query = new URLSearchParams({...params, colormap, alpha, upscale: MAIN_VIEW_SIZE});
  elements.download.href = `api/overlay?${query}`;
}

function markSelections() {
  const params = state.view?.params ?? {};
  for (const item of elements.predictions.children) {
    const selected = Number(item.dataset.classIndex) === state.selectedClass;
    item.classList.toggle('selected', selected);
    item.firstElementChild.setAttribute('aria-pressed', String(selected));
  }
  for (const thumb of elements.thumbs.children) {
    const {layer, head} = thumb.dataset;
    thumb.classList.toggle('selected', params.method === 'cls' && params.layer === layer && params.head === head);
  }
}

function renderPredictions(predictions) {
  elements.predictions.replaceChildren(...predictions.map((prediction) => {
    const button = element('button', {type: 'button', className: 'prediction'},
      element('span', {textContent: `${prediction.rank}. ${prediction.label}`}),
      element('span', {className: 'probability', textContent: percent(prediction.probability)}));
    button.style.setProperty('--probability', String(prediction.probability));
    button.addEventListener('click', () => explainClass(prediction.index));
    const item = element('li', {}, button);
    item.dataset.classIndex = String(prediction.index);
    return item;
  }));
}

// Shows the evidence for a class: its grad-rollout, unless another class-specific method is chosen.
function explainClass(classIndex) {
  state.selectedClass = classIndex;
  if (!CLASS_METHODS.has(elements.method.value)) elements.method.value = 'grad-rollout';
  updateControlVisibility();
  showSelectedMap();
}

function renderCaption(caption) {
  elements.captionSection.hidden = !caption;
  elements.caption.replaceChildren();
  elements.wordInfo.textContent = WORD_HINT;
  caption?.words.forEach((word, index) => {
    const span = element('span', {className: 'word', tabIndex: 0, textContent: word.word});
    span.addEventListener('pointerenter', () => showWord(caption, index));
    span.addEventListener('focus', () => showWord(caption, index));
    span.addEventListener('pointerleave', hideWord);
    span.addEventListener('blur', hideWord);
    elements.caption.append(span, ' ');
  });
}

// While the pointer is on a word, its attention (over the captioner's own crop) replaces the view.
function showWord(caption, index) {
  const word = caption.words[index];
  state.wordView = {
    method: 'caption',
    params: {word: index},
    grid: word.attention,
    crop: caption.crop,
    cell: null,
    title: `caption word ${index + 1}, "${word.word}"`,
  };
  elements.wordInfo.textContent = `"${word.word}": probability ${percent(word.probability)}`;
  render();
}

function hideWord() {
  state.wordView = null;
  elements.wordInfo.textContent = WORD_HINT;
  render();
}

function renderThumbnails({maps, heads}) {
  elements.thumbs.style.setProperty('--heads', String(heads));
  elements.thumbs.replaceChildren(...maps.cls.maps.map((_, index) =>
    thumbnailButton(maps.cls.titles[index], Math.floor(index / heads), index % heads)));
  drawThumbnails();
}

function thumbnailButton(title, layer, head) {
  const canvas = element('canvas');
  fitCanvas(canvas, state.analysis, THUMBNAIL_SIZE);
  const button = element('button', {type: 'button', className: 'thumb', title: `Show ${title}`}, canvas, title);
  Object.assign(button.dataset, {layer: String(layer), head: String(head)});
  button.addEventListener('click', () => showClassTokenMap(layer, head));
  return button;
}

function drawThumbnails() {
  const {analysis} = state;
  elements.thumbs.querySelectorAll('canvas').forEach((canvas, index) => {
    const overlay = {grid: analysis.maps.cls.maps[index], crop: analysis.crop, cell: null};
    drawOverlay(canvas, state.image, analysis, overlay, currentLook());
  });
}

function showClassTokenMap(layer, head) {
  elements.method.value = 'cls';
  elements.layer.value = String(layer);
  elements.head.value = String(head);
  updateControlVisibility();
  showSelectedMap();
}

// ------------------------------------------------------------------ patch queries

// The grid cell under the pointer, through the crop box; null outside it.
function cellUnderPointer(event) {
  const {width, height, crop, grid: [rows, cols]} = state.analysis;
  const bounds = elements.mainCanvas.getBoundingClientRect();
  const x = ((event.clientX - bounds.left) / bounds.width) * width;
  const y = ((event.clientY - bounds.top) / bounds.height) * height;
  const row = Math.floor(((y - crop.y) / crop.height) * rows);
  const col = Math.floor(((x - crop.x) / crop.width) * cols);
  return row >= 0 && row < rows && col >= 0 && col < cols ? [row, col] : null;
}

const inPatchMode = () => state.analysis !== null && PATCH_METHODS.has(selectedMethod());

function queryPatch(cell) {
  if (!cell || sameCell(cell, state.patchCell)) return;
  state.patchCell = cell;
  showSelectedMap();
}

function queryPatchUnderPointer(event) {
  if (inPatchMode()) queryPatch(cellUnderPointer(event));
}

const ARROW_STEPS = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]};

// Arrow keys move the query patch, for keyboards.
function movePatchWithKeys(event) {
  const step = ARROW_STEPS[event.key];
  if (!step || !inPatchMode()) return;
  event.preventDefault();
  const [rows, cols] = state.analysis.grid;
  const [row, col] = state.patchCell;
  queryPatch([Math.min(rows - 1, Math.max(0, row + step[0])), Math.min(cols - 1, Math.max(0, col + step[1]))]);
}

// ------------------------------------------------------------------ wiring

// Drops anywhere on the page count, so a near miss does not make the browser open the file instead.
function acceptDroppedFiles() {
  const highlight = (on) => elements.dropZone.classList.toggle('dragging', on);
  document.addEventListener('dragover', (event) => {
    event.preventDefault();
    highlight(true);
  });
  document.addEventListener('dragleave', (event) => {
    if (event.relatedTarget === null) highlight(false); // left the window
  });
  document.addEventListener('drop', (event) => {
    event.preventDefault();
    highlight(false);
    analyzeFile(event.dataTransfer.files[0]);
  });
}

function recolour() {
  elements.alphaValue.textContent = Number(elements.alpha.value).toFixed(2);
  render();
  if (state.analysis) drawThumbnails();
}

function connectControls() {
  elements.fileInput.addEventListener('change', () => analyzeFile(elements.fileInput.files[0]));
  acceptDroppedFiles();
  for (const control of [elements.method, elements.rolledOut]) {
    control.addEventListener('change', () => {
      updateControlVisibility();
      showSelectedMap();
    });
  }
  for (const control of [elements.fusion, elements.layer, elements.head]) {
    control.addEventListener('change', showSelectedMap);
  }
  const showAfterSliding = debounce(showSelectedMap, DISCARD_DEBOUNCE_MS);
  elements.discard.addEventListener('input', () => {
    elements.discardValue.textContent = Number(elements.discard.value).toFixed(2);
    showAfterSliding();
  });
  elements.colormap.addEventListener('change', recolour);
  elements.alpha.addEventListener('input', recolour);
  elements.mainCanvas.addEventListener('pointermove', queryPatchUnderPointer);
  elements.mainCanvas.addEventListener('pointerdown', queryPatchUnderPointer);
  elements.mainCanvas.addEventListener('keydown', movePatchWithKeys);
}

connectControls();
updateControlVisibility();
listImages();
