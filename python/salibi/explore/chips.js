// salibi explore: the chips as one MapLibre custom layer drawn with WebGL from typed arrays
// (4 vertices and 6 indices per chip; the indices of the chips the filters show, rebuilt on change).
// Positions are float32 offsets from a float64 origin; the map's matrix is moved to that origin.
// eslint-disable-next-line no-unused-vars
function salibiChipsLayer(map, chip) {
  "use strict";
  const { n, corners, colour, centre, box, visible } = chip;
  const [ox, oy] = chip.origin;
  // A chip smaller than MIN_PX on screen is drawn as a MIN_PX square around its centre, so every
  // chip stays visible (and clickable) at any zoom.
  const MIN_PX = 6;
  const VERTEX = `
    attribute vec2 a_pos;
    attribute vec2 a_centre;
    attribute vec2 a_half;
    attribute vec2 a_corner;
    attribute vec3 a_colour;
    uniform mat4 u_matrix;
    uniform float u_world_px;
    uniform vec2 u_viewport;
    uniform float u_min_px;
    varying vec3 v_colour;
    void main() {
      v_colour = a_colour;
      if (max(a_half.x, a_half.y) * 2.0 * u_world_px >= u_min_px) {
        gl_Position = u_matrix * vec4(a_pos, 0.0, 1.0);
      } else {
        vec4 c = u_matrix * vec4(a_centre, 0.0, 1.0);
        gl_Position = vec4(c.xy + a_corner * u_min_px / u_viewport * c.w, c.z, c.w);
      }
    }`;
  const FRAGMENT = `
    precision mediump float;
    uniform float u_opacity;
    varying vec3 v_colour;
    void main() { gl_FragColor = vec4(v_colour * u_opacity, u_opacity); }`;

  function compile(gl, type, source) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
    return shader;
  }

  // CSS pixels across the whole mercator world at the map's zoom.
  function worldPixels() {
    return 512 * Math.pow(2, map.getZoom());
  }

  // Column 3 of the map's matrix moved to the origin: positions stay small float32 offsets.
  function matrixAtOrigin(m) {
    const out = new Float32Array(16);
    for (let i = 0; i < 12; i++) out[i] = m[i];
    for (let r = 0; r < 4; r++) out[12 + r] = m[r] * ox + m[4 + r] * oy + m[12 + r];
    return out;
  }

  return {
    id: "chips",
    minPx: MIN_PX,
    type: "custom",
    renderingMode: "2d",
    onAdd(_map, gl) {
      this.gl = gl;
      this.program = gl.createProgram();
      gl.attachShader(this.program, compile(gl, gl.VERTEX_SHADER, VERTEX));
      gl.attachShader(this.program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
      gl.linkProgram(this.program);
      if (!gl.getProgramParameter(this.program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(this.program));
      this.uniforms = {};
      for (const name of ["u_matrix", "u_world_px", "u_viewport", "u_min_px", "u_opacity"])
        this.uniforms[name] = gl.getUniformLocation(this.program, name);
      // Per vertex (4 per chip): its corner, the chip's centre and half size, which corner it is, its colour.
      const positions = corners.map((v) => (Number.isFinite(v) ? v : 0));
      const centres = new Float32Array(n * 8), halves = new Float32Array(n * 8), which = new Float32Array(n * 8);
      const colours = new Uint8Array(n * 12);
      const signs = [-1, -1, 1, -1, 1, 1, -1, 1]; // lower-left, lower-right, upper-right, upper-left (y up)
      for (let i = 0; i < n; i++) {
        for (let v = 0; v < 4; v++) {
          centres[i * 8 + v * 2] = centre[i * 2];
          centres[i * 8 + v * 2 + 1] = centre[i * 2 + 1];
          halves[i * 8 + v * 2] = (box[i * 4 + 2] - box[i * 4]) / 2;
          halves[i * 8 + v * 2 + 1] = (box[i * 4 + 3] - box[i * 4 + 1]) / 2;
          colours.set(colour.subarray(i * 3, i * 3 + 3), i * 12 + v * 3);
        }
        which.set(signs, i * 8);
      }
      this.attributes = [];
      const attribute = (name, values, size, type, normalised) => {
        const buffer = gl.createBuffer();
        gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
        gl.bufferData(gl.ARRAY_BUFFER, values, gl.STATIC_DRAW);
        this.attributes.push([gl.getAttribLocation(this.program, name), buffer, size, type, normalised]);
      };
      attribute("a_pos", positions, 2, gl.FLOAT, false);
      attribute("a_centre", centres, 2, gl.FLOAT, false);
      attribute("a_half", halves, 2, gl.FLOAT, false);
      attribute("a_corner", which, 2, gl.FLOAT, false);
      attribute("a_colour", colours, 3, gl.UNSIGNED_BYTE, true);
      this.indices = gl.createBuffer();
      this.uint32 = typeof WebGL2RenderingContext !== "undefined" && gl instanceof WebGL2RenderingContext
        ? true
        : !!gl.getExtension("OES_element_index_uint");
      this.upload();
    },
    upload() {
      const gl = this.gl;
      const Index = this.uint32 ? Uint32Array : Uint16Array;
      let shown = 0;
      for (let i = 0; i < n; i++) shown += visible[i];
      const indices = new Index(shown * 6);
      let at = 0;
      for (let i = 0; i < n; i++) {
        if (!visible[i]) continue;
        const v = i * 4;
        indices.set([v, v + 1, v + 2, v, v + 2, v + 3], at);
        at += 6;
      }
      this.count = at;
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, this.indices);
      gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, indices, gl.STATIC_DRAW);
    },
    render(gl, args) {
      if (!this.count) return;
      const matrix = args && args.defaultProjectionData ? args.defaultProjectionData.mainMatrix : args;
      const canvas = map.getCanvas();
      gl.useProgram(this.program);
      gl.uniformMatrix4fv(this.uniforms.u_matrix, false, matrixAtOrigin(matrix));
      gl.uniform1f(this.uniforms.u_world_px, worldPixels());
      gl.uniform2f(this.uniforms.u_viewport, canvas.clientWidth, canvas.clientHeight);
      gl.uniform1f(this.uniforms.u_min_px, MIN_PX);
      gl.uniform1f(this.uniforms.u_opacity, chip.dimmed() ? 0.55 : 1.0);
      for (const [at, buffer, size, type, normalised] of this.attributes) {
        gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
        gl.enableVertexAttribArray(at);
        gl.vertexAttribPointer(at, size, type, normalised, 0, 0);
      }
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, this.indices);
      gl.enable(gl.BLEND);
      gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
      gl.drawElements(gl.TRIANGLES, this.count, this.uint32 ? gl.UNSIGNED_INT : gl.UNSIGNED_SHORT, 0);
      for (const [at] of this.attributes) gl.disableVertexAttribArray(at);
    },
  };
}
