# Thin human entry point; the real build is Meson (meson.build), the local
# stack is services/, the whole test suite is tests/run.sh.
BUILD ?= build

.PHONY: run test build unit stop status logs asan clean

run:            ## install what is missing, build, start the whole stack, print the URL
	bash services/up

test:           ## install, build, start the stack, run unit + integration + e2e tests
	bash tests/run.sh

build:
	@[ -d $(BUILD) ] || meson setup $(BUILD)
	ninja -C $(BUILD)

unit: build     ## unit tests only (no services needed)
	meson test -C $(BUILD) --suite unit --print-errorlogs

asan:           ## unit tests under ASan+UBSan
	@[ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C build-asan && meson test -C build-asan --suite unit --print-errorlogs

stop:
	bash services/down

status:
	bash services/status

logs:
	bash services/logs

clean:
	rm -rf $(BUILD) build-asan
