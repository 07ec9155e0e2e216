from mlops_local.demo import main

main(prog_name="python -m mlops_local")
