import sys
from pathlib import Path

# The tests here import their helpers module by name, like tests/protocol does.
sys.path.insert(0, str(Path(__file__).parent))
