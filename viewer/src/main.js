// The console's built-in viewer: one study, its series on the side, one stack viewport (cornerstone3D).
//
// The page (appliance/web/viewer/templates/viewer/study.html) already shows a JPEG of the middle slice
// rendered by the server; this script loads the study's description (series, instances, key-image
// documents, data addresses) from the console, opens the first image series on its middle slice, hides
// the JPEG once cornerstone has drawn, and prefetches the rest of the stack. Images come as DICOM files
// (WADO-URI, as stored: JPEG-LS and JPEG 2000 decode here, in the codecs' WASM workers) with the
// console's session cookie (same origin). Every text shown comes from the page (translated there).
import './viewer.css';
import * as core from '@cornerstonejs/core';
import * as tools from '@cornerstonejs/tools';
import dicomImageLoader from '@cornerstonejs/dicom-image-loader';

const { Enums: CoreEvents, RenderingEngine } = core;
const { MouseBindings } = tools.Enums;
const ENGINE = 'appliance-viewer';
const VIEWPORT = 'stack';
const TOOL_GROUP = 'appliance-tools';
const CINE_FRAMES_PER_SECOND = 15;
const TOOLS = {
  WindowLevel: tools.WindowLevelTool,
  Pan: tools.PanTool,
  Zoom: tools.ZoomTool,
  Length: tools.LengthTool,
  StackScroll: tools.StackScrollTool,
};

const page = document.getElementById('viewer');
const element = document.getElementById('viewport');
const preview = document.getElementById('preview');
const slider = document.getElementById('slice');
const position = document.getElementById('position');
const statusLine = document.getElementById('viewer-status');
const state = { study: null, series: null, imageIds: [], references: [], flagged: new Map(), cine: null };
window.viewerTimings = { started: performance.now() };

function text(name) {
  return page.dataset[name] || '';
}

function say(message, kind = '') {
  statusLine.textContent = message;
  statusLine.className = `notice ${kind}`.trim();
  statusLine.hidden = !message;
}

async function fetchJson(address, options = {}) {
  const response = await fetch(address, { credentials: 'same-origin', ...options });
  if (!response.ok) {
    throw new Error(`${response.status}`);
  }
  return response.json();
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, key) => encodeURIComponent(values[key] ?? ''));
}

// The image ids of a series: one per instance, one per frame of a multi-frame instance.
function imagesOf(series) {
  const imageIds = [];
  const references = [];
  for (const instance of series.instances) {
    const address = fill(state.study.addresses.instance, {
      study: state.study.study_instance_uid,
      series: series.series_instance_uid,
      instance: instance.sop_instance_uid,
    });
    const frames = instance.frames || 1;
    for (let frame = 1; frame <= frames; frame += 1) {
      imageIds.push(frames > 1 ? `wadouri:${address}&frame=${frame}` : `wadouri:${address}`);
      references.push({
        series_instance_uid: series.series_instance_uid,
        sop_instance_uid: instance.sop_instance_uid,
        sop_class_uid: instance.sop_class_uid,
        frame: frames > 1 ? frame : null,
      });
    }
  }
  return { imageIds, references };
}

async function setUp() {
  await core.init();
  dicomImageLoader.init({ maxWebWorkers: Math.max(1, Math.min(2, navigator.hardwareConcurrency || 1)) });
  tools.init();
  Object.values(TOOLS).forEach((tool) => tools.addTool(tool));
  const engine = new RenderingEngine(ENGINE);
  engine.enableElement({ viewportId: VIEWPORT, type: core.Enums.ViewportType.STACK, element });
  const group = tools.ToolGroupManager.createToolGroup(TOOL_GROUP);
  Object.keys(TOOLS).forEach((name) => group.addTool(TOOLS[name].toolName));
  group.addViewport(VIEWPORT, ENGINE);
  group.setToolActive(tools.StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] });
  group.setToolActive(tools.PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
  group.setToolActive(tools.ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
  chooseTool('WindowLevel');
  element.addEventListener(CoreEvents.Events.STACK_NEW_IMAGE, showPosition);
  element.addEventListener(CoreEvents.Events.IMAGE_RENDERED, firstRender);
  element.addEventListener('contextmenu', (event) => event.preventDefault());
  return engine.getViewport(VIEWPORT);
}

function chooseTool(name) {
  const group = tools.ToolGroupManager.getToolGroup(TOOL_GROUP);
  for (const other of ['WindowLevel', 'Length']) {
    if (other !== name) group.setToolPassive(TOOLS[other].toolName);
  }
  const bindings = [{ mouseButton: MouseBindings.Primary }];
  if (name === 'Pan') bindings.push({ mouseButton: MouseBindings.Auxiliary });
  if (name === 'Zoom') bindings.push({ mouseButton: MouseBindings.Secondary });
  group.setToolActive(TOOLS[name].toolName, { bindings });
  document.querySelectorAll('[data-tool]').forEach((button) => {
    button.setAttribute('aria-pressed', String(button.dataset.tool === name));
  });
}

function firstRender() {
  if (window.viewerTimings.firstRender) return;
  window.viewerTimings.firstRender = performance.now();
  page.dataset.firstRender = String(Math.round(window.viewerTimings.firstRender));
  preview.hidden = true;
}

function viewport() {
  return core.getRenderingEngine(ENGINE).getViewport(VIEWPORT);
}

function showPosition() {
  const index = viewport().getCurrentImageIdIndex();
  slider.value = String(index + 1);
  position.textContent = `${index + 1} / ${state.imageIds.length}`;
  page.dataset.index = String(index);
  const flag = document.getElementById('flag');
  flag.setAttribute('aria-pressed', String(state.flagged.has(state.imageIds[index])));
}

async function openStack(imageIds, references, title, start) {
  stopCine();
  state.imageIds = imageIds;
  state.references = references;
  slider.max = String(Math.max(1, imageIds.length));
  slider.disabled = imageIds.length < 2;
  document.getElementById('stack-title').textContent = title;
  await viewport().setStack(imageIds, start);
  viewport().render();
  tools.utilities.stackPrefetch.enable(element);
  showPosition();
}

async function openSeries(series) {
  state.series = series;
  document.querySelectorAll('#series-list [data-series]').forEach((item) => {
    item.setAttribute('aria-current', String(item.dataset.series === series.series_instance_uid));
  });
  const { imageIds, references } = imagesOf(series);
  const multiFrame = series.instances.some((instance) => (instance.frames || 1) > 1);
  document.getElementById('cine').hidden = !multiFrame;
  const title = [series.modality, series.number ?? '', series.description].join(' ').trim();
  await openStack(imageIds, references, title, Math.floor((imageIds.length - 1) / 2));
}

function go(delta) {
  const index = Math.min(state.imageIds.length - 1, Math.max(0, viewport().getCurrentImageIdIndex() + delta));
  return viewport().setImageIdIndex(index);
}

function goTo(index) {
  return viewport().setImageIdIndex(Math.min(state.imageIds.length - 1, Math.max(0, index)));
}

function preset(button) {
  const width = Number(button.dataset.width);
  const center = Number(button.dataset.center);
  viewport().setProperties({ voiRange: core.utilities.windowLevel.toLowHighRange(width, center) });
  viewport().render();
  page.dataset.preset = button.dataset.preset;
}

function toggleCine() {
  if (state.cine) {
    stopCine();
    return;
  }
  state.cine = window.setInterval(() => {
    const next = (viewport().getCurrentImageIdIndex() + 1) % state.imageIds.length;
    viewport().setImageIdIndex(next);
  }, 1000 / CINE_FRAMES_PER_SECOND);
  document.getElementById('cine').setAttribute('aria-pressed', 'true');
}

function stopCine() {
  if (state.cine) window.clearInterval(state.cine);
  state.cine = null;
  document.getElementById('cine').setAttribute('aria-pressed', 'false');
}

function toggleFlag() {
  const index = viewport().getCurrentImageIdIndex();
  const imageId = state.imageIds[index];
  if (state.flagged.has(imageId)) state.flagged.delete(imageId);
  else state.flagged.set(imageId, state.references[index]);
  document.getElementById('flagged-count').textContent = String(state.flagged.size);
  document.getElementById('save-key-images').disabled = state.flagged.size === 0;
  showPosition();
}

async function saveKeyImages(event) {
  event.preventDefault();
  const form = event.target;
  const body = {
    title: form.elements.title.value,
    note: form.elements.note.value,
    images: [...state.flagged.values()],
  };
  try {
    const answer = await fetchJson(page.dataset.keyImagesUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRFToken': page.dataset.csrfToken },
      body: JSON.stringify(body),
    });
    state.flagged.clear();
    document.getElementById('flagged-count').textContent = '0';
    document.getElementById('save-key-images').disabled = true;
    form.elements.note.value = '';
    state.study.key_images = answer.key_images;
    listKeyImages();
    say(text('messageSaved'), 'success');
    showPosition();
  } catch (error) {
    say(`${text('messageNotSaved')} (${error.message})`, 'error');
  }
}

function listSeries() {
  const list = document.getElementById('series-list');
  list.replaceChildren();
  for (const series of state.study.series.filter((entry) => entry.images)) {
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.series = series.series_instance_uid;
    const picture = document.createElement('img');
    picture.alt = '';
    picture.loading = 'lazy';
    picture.src = fill(state.study.addresses.thumbnail, {
      study: state.study.study_instance_uid,
      series: series.series_instance_uid,
    });
    const label = document.createElement('span');
    label.textContent = `${series.modality} ${series.number ?? ''} ${series.description} (${series.frames})`;
    button.append(picture, label);
    button.addEventListener('click', () => openSeries(series));
    item.append(button);
    list.append(item);
  }
}

function listKeyImages() {
  const list = document.getElementById('key-image-list');
  list.replaceChildren();
  document.getElementById('no-key-images').hidden = state.study.key_images.length > 0;
  for (const documentEntry of state.study.key_images) {
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.keyObject = documentEntry.sop_instance_uid;
    button.textContent = `${documentEntry.title} (${documentEntry.images.length})`;
    button.title = [documentEntry.note, documentEntry.author, documentEntry.created].filter(Boolean).join(' · ');
    button.addEventListener('click', () => showKeyImages(documentEntry));
    item.append(button);
    list.append(item);
  }
}

async function showKeyImages(documentEntry) {
  const imageIds = [];
  const references = [];
  for (const series of state.study.series) {
    const all = imagesOf(series);
    all.references.forEach((reference, index) => {
      const wanted = documentEntry.images.some(
        (image) =>
          image.sop_instance_uid === reference.sop_instance_uid &&
          (image.frame == null || reference.frame == null || image.frame === reference.frame),
      );
      if (wanted) {
        imageIds.push(all.imageIds[index]);
        references.push(reference);
      }
    });
  }
  if (imageIds.length === 0) {
    say(text('messageNoImages'), 'warning');
    return;
  }
  document.getElementById('cine').hidden = true;
  page.dataset.showing = documentEntry.sop_instance_uid;
  await openStack(imageIds, references, documentEntry.title, 0);
}

function onKey(event) {
  if (event.target.closest('input, select, textarea')) return;
  const moves = { ArrowUp: -1, ArrowLeft: -1, ArrowDown: 1, ArrowRight: 1, PageUp: -10, PageDown: 10 };
  if (event.key in moves) go(moves[event.key]);
  else if (event.key === 'Home') goTo(0);
  else if (event.key === 'End') goTo(state.imageIds.length - 1);
  else return;
  event.preventDefault();
}

function wire() {
  slider.addEventListener('input', () => goTo(Number(slider.value) - 1));
  document.addEventListener('keydown', onKey);
  document.querySelectorAll('[data-preset]').forEach((button) => {
    button.addEventListener('click', () => preset(button));
  });
  document.querySelectorAll('[data-tool]').forEach((button) => {
    button.addEventListener('click', () => chooseTool(button.dataset.tool));
  });
  document.getElementById('reset').addEventListener('click', () => {
    viewport().resetCamera();
    viewport().resetProperties();
    viewport().render();
  });
  document.getElementById('cine').addEventListener('click', toggleCine);
  document.getElementById('flag').addEventListener('click', toggleFlag);
  document.getElementById('key-image-form').addEventListener('submit', saveKeyImages);
}

async function main() {
  say(text('messageLoading'));
  try {
    const [study] = await Promise.all([fetchJson(page.dataset.studyUrl), setUp()]);
    state.study = study;
    wire();
    listSeries();
    listKeyImages();
    const first = study.series.find((series) => series.images);
    if (!first) {
      say(text('messageNoImages'), 'warning');
      return;
    }
    await openSeries(first);
    const asked = study.key_images.find((entry) => entry.sop_instance_uid === page.dataset.keyObject);
    if (asked) await showKeyImages(asked);
    say('');
    page.dataset.ready = 'true';
  } catch (error) {
    say(`${text('messageError')} (${error.message})`, 'error');
    throw error;
  }
}

main();
