#!/bin/sh
# example-pkgconfig: examples/ builds against an installed libmatdiff
# through pkg-config, and against the build tree through
# matdiff-uninstalled.pc.
#
#   example.sh BUILDDIR PREFIX LIBDIR EXAMPLE.c CC [CFLAG...]
#
# `meson install --destdir` puts a copy under BUILDDIR/example-install;
# pkg-config reads its matdiff.pc with prefix moved there.  CFLAGs are
# the build's sanitizer flags (an ASan library wants an ASan program).
set -eu
build=$1 prefix=$2 libdir=$3 example=$4 cc=$5
shift 5
case $libdir in /*) ;; *) libdir=$prefix/$libdir ;; esac
dest=$build/example-install
work=$build/example-work
rm -rf "$dest" "$work"
mkdir -p "$work"
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
fail() { n=$((n + 1)); echo "not ok $n - $*"; status=1; }
status=0
echo "TAP version 13"
echo "1..6"

meson install -C "$build" --destdir "$dest" --no-rebuild --quiet \
  >"$work/install.log" 2>&1 || { sed 's/^/# /' "$work/install.log"; exit 1; }
for f in "$dest$prefix/include/matdiff/matdiff.h" \
  "$dest$libdir/pkgconfig/matdiff.pc" "$dest$libdir/libmatdiff.so.0"; do
  [ -e "$f" ] || { fail "installed: $f"; echo "1..$n"; exit 1; }
done
ok "installed: include/matdiff/matdiff.h, matdiff.pc, libmatdiff.so.0"

pc() {
  PKG_CONFIG_PATH="$dest$libdir/pkgconfig" PKG_CONFIG_LIBDIR="" \
    pkg-config --define-variable=prefix="$dest$prefix" "$@" matdiff
}
flags=$(pc --cflags --libs)
echo "# pkg-config --cflags --libs matdiff: $flags"
if [ "$(pc --modversion)" = "$(sed -n 's/^Version: //p' "$dest$libdir/pkgconfig/matdiff.pc")" ]; then
  ok "pkg-config --modversion matdiff: $(pc --modversion)"
else
  fail "pkg-config --modversion matdiff"
fi

# shellcheck disable=SC2086 # the flags are words
if "$cc" "$@" "$example" $flags -o "$work/derivative" 2>"$work/cc.log"; then
  ok "cc $(basename "$example") \$(pkg-config --cflags --libs matdiff)"
else
  sed 's/^/# /' "$work/cc.log"
  fail "cc $(basename "$example") against the install"
fi

# it runs, with the installed library (not the build tree's)
out=$(LD_LIBRARY_PATH="$dest$libdir" "$work/derivative" 'tr(A X^T B)' X 2>&1) || true
lib=$(LD_LIBRARY_PATH="$dest$libdir" ldd "$work/derivative" | grep libmatdiff || true)
echo "# $lib"
case $lib in
*"$dest"*) ;;
*) out="not the installed library: $lib" ;;
esac
if [ "$out" = "B A" ]; then
  ok "derivative 'tr(A X^T B)' X: B A"
else
  fail "derivative 'tr(A X^T B)' X: $out"
fi

# an error: the message, the line and a caret; exit status 2
err=$(LD_LIBRARY_PATH="$dest$libdir" "$work/derivative" 'A x +' x 2>&1) && rc=0 || rc=$?
want="$work/derivative: <expr>:1:6: error: syntax error, unexpected end of input
A x +
     ^"
if [ "$rc" = 2 ] && [ "$err" = "$want" ]; then
  ok "derivative 'A x +' x: an error at 1:6, exit status 2"
else
  printf '%s\n' "$err" | sed 's/^/# /'
  fail "derivative 'A x +' x: status $rc"
fi

# the build tree, through meson-uninstalled/matdiff-uninstalled.pc
uflags=$(PKG_CONFIG_PATH="$build/meson-uninstalled" pkg-config --cflags --libs matdiff)
# shellcheck disable=SC2086
if "$cc" "$@" "$example" $uflags -o "$work/derivative-uninstalled" 2>"$work/cc2.log" &&
  [ "$(LD_LIBRARY_PATH="$build" "$work/derivative-uninstalled" 'x^T a' x)" = a ]; then
  ok "against the build tree: matdiff-uninstalled.pc"
else
  sed 's/^/# /' "$work/cc2.log"
  fail "against the build tree: matdiff-uninstalled.pc"
fi
exit $status
