// The 3D viewer of design pages: turn, zoom and fit an STL, OBJ or 3MF model.
// three.js is served by the hub itself (/vendor/three/, from the npm registry), so this
// works offline. Each <div class="viewer" data-model=... data-format=...> gets a canvas;
// the drawing inside it stays as the fallback where WebGL is missing.
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { STLLoader } from "three/addons/loaders/STLLoader.js";
import { OBJLoader } from "three/addons/loaders/OBJLoader.js";
import { ThreeMFLoader } from "three/addons/loaders/3MFLoader.js";

const LOADERS = { stl: STLLoader, obj: OBJLoader, "3mf": ThreeMFLoader };
const MATERIAL = new THREE.MeshStandardMaterial({ color: 0xb08050, roughness: 0.6, metalness: 0.05 });

function webglWorks() {
  try {
    const canvas = document.createElement("canvas");
    return Boolean(canvas.getContext("webgl2") || canvas.getContext("webgl"));
  } catch (e) { return false; }
}

function asObject(loaded) {
  if (loaded.isBufferGeometry) {
    loaded.computeVertexNormals();
    return new THREE.Mesh(loaded, MATERIAL);
  }
  loaded.traverse((child) => { if (child.isMesh && !child.material.map) child.material = MATERIAL; });
  return loaded;
}

function fit(camera, controls, object) {
  const box = new THREE.Box3().setFromObject(object);
  const size = box.getSize(new THREE.Vector3()).length() || 1;
  const centre = box.getCenter(new THREE.Vector3());
  controls.target.copy(centre);
  camera.near = size / 100;
  camera.far = size * 100;
  camera.position.copy(centre).add(new THREE.Vector3(0.6, -0.9, 0.7).multiplyScalar(size));
  camera.updateProjectionMatrix();
  controls.update();
}

async function start(box) {
  const Loader = LOADERS[box.dataset.format];
  if (!Loader) return;
  const loaded = await new Loader().loadAsync(box.dataset.model);
  const object = asObject(loaded);
  const width = box.clientWidth || 320;
  const height = Math.round(Math.min(width, 480) * 0.75);
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  renderer.setSize(width, height);
  const canvas = renderer.domElement;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", "3D model " + box.dataset.name + ": drag to turn, pinch or scroll to zoom");
  canvas.tabIndex = 0;
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0xf4f1ea);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x886644, 1.6));
  const sun = new THREE.DirectionalLight(0xffffff, 1.8);
  sun.position.set(1, -1, 2);
  scene.add(sun);
  scene.add(object);
  const camera = new THREE.PerspectiveCamera(40, width / height, 0.1, 1000);
  camera.up.set(0, 0, 1); // STL and 3MF are Z-up
  const controls = new OrbitControls(camera, canvas);
  controls.enableDamping = false;
  controls.listenToKeyEvents(canvas); // arrow keys pan the model for keyboard users
  fit(camera, controls, object);
  const draw = () => renderer.render(scene, camera);
  controls.addEventListener("change", draw);
  const reset = document.createElement("button");
  reset.type = "button";
  reset.className = "secondary fit";
  reset.textContent = "Fit the model in view";
  reset.addEventListener("click", () => { fit(camera, controls, object); draw(); });
  box.replaceChildren(canvas, reset);
  box.classList.add("live");
  draw();
}

if (webglWorks()) {
  for (const box of document.querySelectorAll(".viewer[data-model]")) {
    start(box).catch((error) => {
      box.dataset.error = String(error && error.message || error);
    });
  }
}
