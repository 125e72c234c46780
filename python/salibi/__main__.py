from salibi.cli import main

main()
