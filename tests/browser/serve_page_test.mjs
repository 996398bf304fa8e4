// Real-browser test of the page `attn serve` serves: starts the server, drives Debian's chromium through puppeteer-core.
//
//   node serve_page_test.mjs --attn build/apps/attn --root . --screenshots /tmp/attn-page
//
// Exits 0 when every check passes, 1 with the failed check's message otherwise.
import {spawn} from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {createInterface} from 'node:readline';
import {parseArgs} from 'node:util';
import puppeteer from 'puppeteer-core';

// Scaled by --timeout-scale: a server built with the sanitizers runs several times slower.
let OVERALL_TIMEOUT_MS = 60_000;
let STEP_TIMEOUT_MS = 15_000;
const GRID_TOLERANCE = 1e-6;
const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const SERVER_STOP_TIMEOUT_MS = 5_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class CheckFailed extends Error {}

function check(description, passed, detail = '') {
  if (!passed) throw new CheckFailed(`${description}${detail ? `: ${detail}` : ''}`);
  console.log(`ok   ${description}`);
}

// Where two grids first differ by more than the tolerance, or null when they agree.
function gridDifference(actual, expected) {
  if (!Array.isArray(actual) || actual.length !== expected.length) {
    return `${actual?.length} rows instead of ${expected.length}`;
  }
  for (let row = 0; row < expected.length; row++) {
    if (actual[row].length !== expected[row].length) {
      return `row ${row} has ${actual[row].length} cells instead of ${expected[row].length}`;
    }
    for (let col = 0; col < expected[row].length; col++) {
      if (!(Math.abs(actual[row][col] - expected[row][col]) <= GRID_TOLERANCE)) {
        return `cell (${row}, ${col}) is ${actual[row][col]} instead of ${expected[row][col]}`;
      }
    }
  }
  return null;
}

function checkGrid(description, actual, expected) {
  const difference = gridDifference(actual, expected);
  check(description, difference === null, difference);
}

function parseOptions() {
  const {values} = parseArgs({
    options: {
      attn: {type: 'string'},
      root: {type: 'string'},
      screenshots: {type: 'string', default: path.join(os.tmpdir(), 'attn-serve-page')},
      chromium: {type: 'string', default: '/usr/bin/chromium'},
      'timeout-scale': {type: 'string', default: '1'},
    },
  });
  const scale = Number(values['timeout-scale']);
  if (!(scale >= 1)) throw new CheckFailed('--timeout-scale must be a number >= 1');
  OVERALL_TIMEOUT_MS *= scale;
  STEP_TIMEOUT_MS *= scale;
  if (!values.attn || !values.root) {
    throw new CheckFailed('usage: node serve_page_test.mjs --attn PATH_TO_attn --root REPO_ROOT [--screenshots DIR] [--chromium PATH] [--timeout-scale N]');
  }
  return {...values, attn: path.resolve(values.attn), root: path.resolve(values.root)};
}

// Starts `attn serve` on a free port and resolves to its URL, read from the line it prints.
function startServer({attn, root}, resources) {
  const directories = ['samples/fashion', 'samples/scenes'].map((directory) => path.join(root, directory));
  const server = spawn(attn, ['serve', '--port', '0', ...directories], {cwd: root, stdio: ['ignore', 'pipe', 'pipe']});
  resources.server = server;
  let stderr = '';
  server.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-2000);
  });
  return new Promise((resolve, reject) => {
    createInterface({input: server.stdout}).on('line', (line) => {
      const url = line.match(/http:\/\/[^ ]+\//)?.[0];
      if (url) resolve(url);
    });
    server.on('error', reject);
    server.on('close', (code, signal) => { // after 'exit', once stderr is read to its end
      reject(new CheckFailed(`attn serve exited (${code ?? signal}) before printing its URL: ${stderr.trim()}`));
    });
  });
}

async function openPage(options, url, resources) {
  const runsAsRoot = process.getuid?.() === 0;
  resources.browser = await puppeteer.launch({
    executablePath: options.chromium,
    headless: true,
    args: [...(runsAsRoot ? ['--no-sandbox'] : []), '--disable-gpu'],
  });
  const page = await resources.browser.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  await page.setViewport({width: 1280, height: 1000});
  const problems = [];
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  const mapRequests = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === '/api/map') mapRequests.push(request.url());
  });
  await page.goto(url);
  return {page, problems, mapRequests};
}

const pageState = (page) => page.evaluate(() => window.attnState);

// Waits until the main view shows a map of this method whose parameters include `params`.
async function waitForMap(page, method, params = {}) {
  await page.waitForFunction((wanted) => {
    const map = window.attnState.currentMap;
    return map?.method === wanted.method && Object.entries(wanted.params).every(([name, value]) => map.params[name] === value);
  }, {}, {method, params});
  return (await pageState(page)).currentMap;
}

async function fetchMap(baseUrl, analysisId, query) {
  const response = await fetch(new URL(`api/map?id=${analysisId}&${query}`, baseUrl));
  const body = await response.json();
  if (!response.ok) throw new CheckFailed(`GET /api/map?${query} answered ${response.status}: ${JSON.stringify(body)}`);
  return body.maps[0];
}

// Moves the mouse to the centre of a grid cell of the main canvas, through the analysis' crop box.
async function hoverCell(page, analysis, [row, col]) {
  const canvas = await page.$('#main-canvas');
  await canvas.scrollIntoView();
  const bounds = await canvas.boundingBox();
  const {crop, width, height, grid: [rows, cols]} = analysis;
  const imageX = crop.x + ((col + 0.5) * crop.width) / cols;
  const imageY = crop.y + ((row + 0.5) * crop.height) / rows;
  await page.mouse.move(bounds.x + (imageX / width) * bounds.width, bounds.y + (imageY / height) * bounds.height);
}

// A hash of the main canvas' pixels, read back with getImageData.
const canvasPixelHash = (page) => page.$eval('#main-canvas', (canvas) => {
  const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  return data.reduce((hash, byte) => (Math.imul(hash, 31) + byte) >>> 0, 7);
});

async function setSlider(page, selector, value) {
  await page.$eval(selector, (slider, newValue) => {
    slider.value = newValue;
    slider.dispatchEvent(new Event('input', {bubbles: true}));
  }, String(value));
}

async function screenshot(page, directory, name) {
  await page.screenshot({path: path.join(directory, name), fullPage: true});
  console.log(`     screenshot ${path.join(directory, name)}`);
}

async function checkUpload(page, root) {
  const scenes = path.join(root, 'samples/scenes');
  const firstScene = (await fs.readdir(scenes)).filter((name) => name.endsWith('.png')).sort()[0];
  await (await page.$('#file-input')).uploadFile(path.join(scenes, firstScene));
  await page.waitForSelector('body[data-ready="1"]');
  const {analysis} = await pageState(page);
  check(`uploading samples/scenes/${firstScene} shows an analysis`, analysis?.id !== undefined);
  return analysis;
}

async function checkPredictions(page, analysis) {
  const shown = await page.$$eval('#predictions li', (items) => items.map((item) => item.textContent));
  check('the predictions list is not empty', shown.length > 0);
  const matches = shown.length === analysis.predictions.length &&
    analysis.predictions.every((prediction, rank) => shown[rank].includes(prediction.label));
  check('the predictions list is the analysis\' predictions, in order', matches, JSON.stringify(shown));
}

async function checkRollout(page, analysis, options) {
  const {currentMap} = await pageState(page);
  check('the main view starts with rollout', currentMap?.method === 'rollout', currentMap?.method);
  checkGrid('the main view shows the analysis\' rollout grid', currentMap.grid, analysis.maps.rollout.maps[0]);
  await screenshot(page, options.screenshots, 'page-rollout.png');
}

// Fusion and discard refetch the rollout; back at their defaults the analysis' own grid returns.
async function checkRolloutOptions(page, analysis, baseUrl) {
  await page.select('#fusion', 'max');
  await setSlider(page, '#discard', 0.5);
  const shown = await waitForMap(page, 'rollout', {fusion: 'max', discard: '0.5'});
  const expected = await fetchMap(baseUrl, analysis.id, 'method=rollout&fusion=max&discard=0.5');
  checkGrid('fusion max and discard 0.5 show that rollout', shown.grid, expected);
  await page.select('#fusion', 'mean');
  await setSlider(page, '#discard', 0);
  const restored = await waitForMap(page, 'rollout', {fusion: 'mean', discard: '0'});
  checkGrid('back at mean and 0 the analysis\' rollout returns', restored.grid, analysis.maps.rollout.maps[0]);
}

async function checkPatchQueries(page, analysis, baseUrl, mapRequests, options) {
  await page.select('#method', 'patch');
  const layer = await page.$eval('#layer', (select) => select.value);
  const head = await page.$eval('#head', (select) => select.value);
  const [rows, cols] = analysis.grid;
  const cells = [[0, 0], [rows - 1, cols - 1]];
  const grids = [];
  for (const [row, col] of cells) {
    const expected = await fetchMap(baseUrl, analysis.id, `method=patch&cell=${row},${col}&layer=${layer}&head=${head}`);
    await hoverCell(page, analysis, [row, col]);
    const shown = await waitForMap(page, 'patch', {cell: `${row},${col}`});
    checkGrid(`hovering cell (${row}, ${col}) shows its patch map`, shown.grid, expected);
    grids.push(shown.grid);
  }
  check('the patch map changes between the two cells', gridDifference(grids[0], grids[1]) !== null);
  await screenshot(page, options.screenshots, 'page-patch.png');

  const requestsBefore = mapRequests.length;
  await hoverCell(page, analysis, cells[0]);
  await waitForMap(page, 'patch', {cell: '0,0'});
  check('hovering a cell again is answered from the cache', mapRequests.length === requestsBefore,
    mapRequests.slice(requestsBefore).join(' '));

  await page.click('#rolled-out');
  const rolledOut = await waitForMap(page, 'patch-rollout', {cell: '0,0'});
  const expected = await fetchMap(baseUrl, analysis.id, 'method=patch-rollout&cell=0,0&fusion=mean&discard=0');
  checkGrid('"rolled out" shows the patch-rollout map of the cell', rolledOut.grid, expected);
  await page.click('#rolled-out');
  await waitForMap(page, 'patch', {cell: '0,0'});
}

async function checkCaption(page, analysis, options) {
  const {caption} = analysis;
  check('the analysis has a caption', caption !== null);
  const words = await page.$$('#caption .word');
  check('the caption shows every word', words.length === caption.words.length, `${words.length} of ${caption.words.length}`);
  const index = Math.min(1, words.length - 1);
  await words[index].hover();
  const shown = await waitForMap(page, 'caption');
  checkGrid(`hovering "${caption.words[index].word}" shows its attention`, shown.grid, caption.words[index].attention);
  const href = await page.$eval('#download', (link) => link.href);
  check('over a word, the download is the caption panel', new URL(href).searchParams.get('method') === 'caption', href);
  await screenshot(page, options.screenshots, 'page-caption.png');
  await page.mouse.move(1, 1);
  await waitForMap(page, 'patch', {cell: '0,0'});
  check('leaving the word restores the patch map', true);
}

async function checkClassClick(page, analysis, baseUrl) {
  check('there is a second prediction to click', analysis.predictions.length >= 2);
  const second = analysis.predictions[1];
  await page.click('#predictions li:nth-child(2)');
  const shown = await waitForMap(page, 'grad-rollout', {class: String(second.index)});
  const expected = await fetchMap(baseUrl, analysis.id, `method=grad-rollout&class=${second.index}`);
  checkGrid(`clicking "${second.label}" shows its grad-rollout`, shown.grid, expected);
  const highlighted = await page.$eval('#predictions li:nth-child(2)', (item) => item.classList.contains('selected'));
  check('the clicked class is highlighted', highlighted);
  await checkOtherClassMethods(page, analysis, baseUrl, second.index);
}

// Relevance and Grad-CAM explain the selected class too (Grad-CAM at the last layer).
async function checkOtherClassMethods(page, analysis, baseUrl, classIndex) {
  const lastLayer = String(analysis.layers - 1);
  for (const [method, query] of [['relevance', ''], ['gradcam', `&layer=${lastLayer}`]]) {
    await page.select('#method', method);
    const shown = await waitForMap(page, method, {class: String(classIndex)});
    const expected = await fetchMap(baseUrl, analysis.id, `method=${method}&class=${classIndex}${query}`);
    checkGrid(`${method} shows the selected class' map`, shown.grid, expected);
  }
}

// Returns the index of the thumbnail it clicked (layer 1, head 1 when the model has them).
async function checkThumbnail(page, analysis, options) {
  const {layers, heads, maps} = analysis;
  const thumbnails = await page.$$('#thumbs canvas');
  check('there is a thumbnail for every layer and head', thumbnails.length === layers * heads,
    `${thumbnails.length} instead of ${layers * heads}`);
  const index = Math.min(thumbnails.length - 1, heads + 1);
  const [layer, head] = [Math.floor(index / heads), index % heads];
  await thumbnails[index].click();
  const shown = await waitForMap(page, 'cls', {layer: String(layer), head: String(head)});
  checkGrid(`clicking the thumbnail "${maps.cls.titles[index]}" enlarges it`, shown.grid, maps.cls.maps[index]);
  await screenshot(page, options.screenshots, 'page-heads.png');
  return index;
}

async function checkLocalRecolouring(page, mapRequests) {
  const requestsBefore = mapRequests.length;
  const before = await canvasPixelHash(page);
  await setSlider(page, '#alpha', 0.9);
  const afterAlpha = await canvasPixelHash(page);
  check('changing the opacity redraws the canvas', afterAlpha !== before);
  await page.select('#colormap', 'viridis');
  check('changing the colormap redraws the canvas', (await canvasPixelHash(page)) !== afterAlpha);
  check('recolouring asks the server nothing', mapRequests.length === requestsBefore);
}

async function checkDownload(page) {
  const href = await page.$eval('#download', (link) => link.href);
  const query = new URL(href).searchParams;
  const expectedParams = {method: 'cls', colormap: 'viridis', alpha: '0.9'};
  const mismatched = Object.entries(expectedParams).filter(([name, value]) => query.get(name) !== value);
  check('the download link describes the shown map and look', mismatched.length === 0, href);
  const result = await page.evaluate(async (url) => {
    const response = await fetch(url);
    const bytes = new Uint8Array(await response.arrayBuffer());
    return {status: response.status, type: response.headers.get('content-type'), head: [...bytes.slice(0, 8)]};
  }, href);
  check('the download answers 200', result.status === 200, String(result.status));
  check('the download is image/png', result.type?.startsWith('image/png'), result.type);
  check('the download starts with the PNG signature', result.head.join() === PNG_SIGNATURE.join(), result.head.join());
}

async function checkListedImage(page, baseUrl, previous, thumbnailIndex) {
  const {images} = await (await fetch(new URL('api/images', baseUrl))).json();
  const shownNames = await page.$$eval('#images li', (items) => items.map((item) => item.textContent));
  const offered = shownNames.length === images.length && images.every((image, i) => image.name.endsWith(shownNames[i]));
  check('every listed image is offered', offered, JSON.stringify(shownNames));
  await page.click('#images li');
  await page.waitForFunction((previousId) =>
    document.body.dataset.ready === '1' && window.attnState.analysis?.id !== previousId, {}, previous.id);
  const {analysis, currentMap} = await pageState(page);
  check(`picking ${images[0].name} shows its analysis`, images[0].name.endsWith(analysis.name) && analysis.predictions.length > 0,
    analysis.name);
  checkGrid('the new analysis keeps the chosen map (that thumbnail\'s)', currentMap.grid, analysis.maps.cls.maps[thumbnailIndex]);
}

async function checkNoProblems(page, problems) {
  check('the page reported no API error', (await pageState(page)).lastError === null);
  check('the page logged no errors', problems.length === 0, problems.join('; '));
}

async function runChecks(options, resources) {
  const baseUrl = await startServer(options, resources);
  console.log(`     attn serve at ${baseUrl}`);
  await fs.mkdir(options.screenshots, {recursive: true});
  const {page, problems, mapRequests} = await openPage(options, baseUrl, resources);
  const analysis = await checkUpload(page, options.root);
  await checkPredictions(page, analysis);
  await checkRollout(page, analysis, options);
  await checkRolloutOptions(page, analysis, baseUrl);
  await checkPatchQueries(page, analysis, baseUrl, mapRequests, options);
  await checkCaption(page, analysis, options);
  await checkClassClick(page, analysis, baseUrl);
  const thumbnailIndex = await checkThumbnail(page, analysis, options);
  await checkLocalRecolouring(page, mapRequests);
  await checkDownload(page);
  await checkListedImage(page, baseUrl, analysis, thumbnailIndex);
  await checkNoProblems(page, problems);
}

// Closes the browser and stops the server, killing it if SIGTERM has not stopped it in time.
async function release({browser, server}) {
  await browser?.close().catch(() => {});
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  const stopped = await Promise.race([exited.then(() => true), sleep(SERVER_STOP_TIMEOUT_MS).then(() => false)]);
  if (!stopped) {
    console.error(`attn serve ignored SIGTERM for ${SERVER_STOP_TIMEOUT_MS / 1000} s: killing it`);
    server.kill('SIGKILL');
  }
}

async function main() {
  const resources = {};
  process.on('exit', () => resources.server?.kill('SIGKILL')); // never leave the server behind
  const giveUp = new Promise((_, reject) => {
    setTimeout(() => reject(new CheckFailed(`gave up after ${OVERALL_TIMEOUT_MS / 1000} s`)), OVERALL_TIMEOUT_MS).unref();
  });
  try {
    await Promise.race([runChecks(parseOptions(), resources), giveUp]);
    console.log('PASS serve page test');
    await release(resources);
    process.exit(0);
  } catch (error) {
    console.error(`FAIL ${error instanceof CheckFailed ? error.message : error.stack}`);
    await release(resources);
    process.exit(1);
  }
}

main();
