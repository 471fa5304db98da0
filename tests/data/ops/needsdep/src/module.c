#define PY_SSIZE_T_CLEAN
#include <Python.h>

int envbuild_needsdep_scale(float* data, int n);

/* __FILE__ is written into the binary: envbuild must map the build dir to a fixed name */
static PyObject* source_file(PyObject* self, PyObject* args) {
  return PyUnicode_FromString(__FILE__);
}

static PyMethodDef methods[] = {{"source_file", source_file, METH_NOARGS, "__FILE__"},
                                {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "envbuild_needsdep", NULL, -1, methods};

PyMODINIT_FUNC PyInit_envbuild_needsdep(void) {
  (void)&envbuild_needsdep_scale;
  PyObject* dep = PyImport_ImportModule("envbuild_fixture_dep");
  if (dep == NULL) return NULL;
  Py_DECREF(dep);
  return PyModule_Create(&def);
}
