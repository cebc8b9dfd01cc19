import sys
from pathlib import Path

# The tests here import simnet_helpers by name (unique: tests/protocol has a helpers too).
sys.path.insert(0, str(Path(__file__).parent))
