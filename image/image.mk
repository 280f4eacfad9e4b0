# The appliance image: build, boot, test. Included by the top Makefile (include image/image.mk).
# Every path is relative to the repository root (the directory make runs in).
# See image/README.md for what each step does and how long it takes.

PYTHON ?= .venv/bin/python
IMAGE_DIR ?= build/image
IMAGE_TEST_DIR ?= build/image-test
ANSIBLE_VENV ?= build/ansible-venv
IMAGE_TEST_KEY := $(IMAGE_TEST_DIR)/ssh/id_ed25519
VM_IMAGE ?= $(IMAGE_DIR)/appliance.qcow2
VM_DATA_DISKS ?= 2

# Debian packages the build and the VM tests need on the build machine (Debian 12 or 13).
IMAGE_APT_PACKAGES := mmdebstrap debian-archive-keyring qemu-system-x86 qemu-utils ovmf \
	grub-efi-amd64-bin dosfstools mtools fdisk e2fsprogs systemd-container socat \
	openssh-client openssh-server nut-server nut-client nftables dcmtk python3-venv

.PHONY: image-deps image image-test-variant vm-test vm-run test-image image-clean

image-deps: ## Install what the image build and the VM tests need (apt packages, Ansible venv); idempotent
	@missing=$$(for p in $(IMAGE_APT_PACKAGES); do \
		dpkg-query -W -f='$${db:Status-Status}\n' $$p 2>/dev/null | grep -qx installed || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "image-deps: apt-get install $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing >/dev/null; \
	fi
	@if [ ! -f $(ANSIBLE_VENV)/.installed ] || [ ansible/controller-requirements.txt -nt $(ANSIBLE_VENV)/.installed ]; then \
		echo "image-deps: Ansible into $(ANSIBLE_VENV)"; \
		rm -rf $(ANSIBLE_VENV) && python3 -m venv $(ANSIBLE_VENV) && \
		{ $(ANSIBLE_VENV)/bin/pip install -q --disable-pip-version-check --require-hashes \
			-r ansible/controller-requirements.txt > build/ansible-venv.log 2>&1 \
			|| { cat build/ansible-venv.log; exit 1; }; } && touch $(ANSIBLE_VENV)/.installed; \
	fi

image: image-deps ## Build the production disk image (build/image/appliance.raw + .qcow2)
	image/build.sh --inventory production --out $(IMAGE_DIR)

$(IMAGE_TEST_KEY):
	mkdir -p $(dir $@)
	ssh-keygen -q -t ed25519 -N '' -C appliance-test-image -f $@

image-test-variant: image-deps $(IMAGE_TEST_KEY) ## Build the test image (test inventory: simulated UPS, test peers, test ssh key), checking idempotence
	image/build.sh --inventory test --out $(IMAGE_TEST_DIR) --check-idempotence \
		$(if $(wildcard $(IMAGE_DIR)/tree/etc),--from-tree $(IMAGE_DIR)/tree) \
		--extra-var test_ssh_public_key_file=$(abspath $(IMAGE_TEST_KEY)).pub

# The VM tests in two lanes, each its own pytest and its own qemu, run side by side: qemu's TCG
# keeps one host core busy per single-vCPU guest, so on a 2-core machine two lanes take the time
# of the longer one (about 25 min) instead of the sum (about 48). A new VM test file goes to the
# "boot" lane unless named here. Each lane's output is printed whole when it ends (make
# --output-sync), so the two never interleave.
VM_LANE_health := tests/system/test_vm_health.py
VM_LANE_boot := $(filter-out $(VM_LANE_health),$(sort $(wildcard tests/system/test_vm*.py)))
VM_LANES := boot health
SYSTEM_PYTEST := APPLIANCE_SYSTEM_TESTS=1 $(PYTHON) -m pytest -p no:cacheprovider -v -rsP --durations=0

.PHONY: $(addprefix vm-lane-,$(VM_LANES))
$(addprefix vm-lane-,$(VM_LANES)): vm-lane-%:
	$(SYSTEM_PYTEST) -m vm $(VM_LANE_$*)

vm-test: ## Boot the test image in qemu (TCG, UEFI, 2 system + 2 data disks) and run the boot tests
	@test -f $(IMAGE_TEST_DIR)/appliance.qcow2 || { echo "vm-test: no test image: run 'make image-test-variant' first"; exit 1; }
	$(MAKE) --no-print-directory -j2 --output-sync=target $(addprefix vm-lane-,$(VM_LANES))

vm-run: ## Boot an image interactively (VM_IMAGE=..., default the production image); ports forwarded to 127.0.0.1
	python3 image/vm.py run --image $(VM_IMAGE) --data-disks $(VM_DATA_DISKS) \
		$(if $(wildcard $(IMAGE_TEST_KEY)),--ssh-key $(IMAGE_TEST_KEY))

test-image: image-deps image image-test-variant ## CI: build both images, then static, nspawn and VM boot tests (pytest)
	@test -x $(PYTHON) || { echo "test-image: no $(PYTHON): run 'make venv' first"; exit 1; }
	$(SYSTEM_PYTEST) -m "not vm" tests/system
	$(MAKE) --no-print-directory vm-test

image-clean: ## Remove the built images and trees (keeps the mmdebstrap cache in build/cache)
	rm -rf $(IMAGE_DIR) $(IMAGE_TEST_DIR)
